"""Chapter 09's random-neuron control as a distribution: percentile, its interval, the draws."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moralkit.claims import AGREES, DISAGREES, INCONCLUSIVE, judge_claim, load_claims
from moralkit.diagnostics.resampling import percentile_of, permutation_p
from moralkit.neurons.controls import (
    POOLED,
    EditShifts,
    percentile_interval,
    random_control_table,
)
from moralkit.neurons.edit import NeuronSet, edit_sets, random_like
from moralkit.neurons.results import ValueSweepResult


def test_percentile_on_fixed_numbers():
    null = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert percentile_of(3.0, null) == 100.0
    assert percentile_of(-3.0, null) == 0.0
    assert percentile_of(0.5, null) == 60.0  # three of five below
    assert percentile_of(1.0, null) == 70.0  # three below, one tie counted one half
    # one value per resample against one null row per resample
    got = percentile_of(np.array([0.5, 3.0]), np.stack([null, null]))
    np.testing.assert_allclose(got, [60.0, 100.0])
    assert permutation_p(3.0, null) == pytest.approx(1 / 6)
    assert permutation_p(0.5, null) == pytest.approx(3 / 6)
    with pytest.raises(ValueError, match="at least one"):
        percentile_of(1.0, np.array([]))


def _shifts(value_target, value_opposite, random_target, random_opposite) -> EditShifts:
    arrays = (value_target, value_opposite, random_target, random_opposite)
    return EditShifts(*(np.asarray(a, dtype=float) for a in arrays))


def test_interval_is_a_point_when_every_item_agrees():
    # every item shifts by the same amount: resampling items changes nothing
    random = np.linspace(-1, 1, 20)[:, None] * np.ones((20, 4))
    shifts = _shifts([0.5] * 4, [-0.5] * 4, random, np.zeros((20, 4)))
    low, high = percentile_interval([shifts], 500, seed=0)
    assert low == high == percentile_of(1.0, random[:, 0])


def test_interval_widens_when_items_disagree():
    rng = np.random.default_rng(0)
    random_t, random_o = rng.normal(0, 0.3, (20, 6)), rng.normal(0, 0.3, (20, 6))
    wide = _shifts(rng.normal(0.3, 1.0, 6), rng.normal(0.0, 1.0, 6), random_t, random_o)
    low, high = percentile_interval([wide], 1000, seed=1)
    assert 0 <= low < high <= 100 and high - low >= 20
    assert percentile_interval([wide], 1000, seed=1) == (low, high)  # seeded


def _ratings(value_sep: float, random_seps: list[float], n_items: int = 3) -> pd.DataFrame:
    """A ratings table whose value edit and random draws have the given separations."""
    rows = []
    draws = [("value", 0, value_sep)] + [("random", k, s) for k, s in enumerate(random_seps)]
    for mode, draw, sep in draws:
        for role, shift in (("target", sep / 2), ("opposite", -sep / 2)):
            for i in range(n_items):
                rows.append(
                    {
                        "model": "m",
                        "target": "Conservation",
                        "mode": mode,
                        "draw": draw,
                        "gamma": 2.0,
                        "role": role,
                        "item_id": f"{role}{i}",
                        "shift": shift,
                    }
                )
    return pd.DataFrame(rows)


def test_control_table_and_claim_on_fixed_numbers():
    ratings = _ratings(0.8, [0.1 * k for k in range(-12, 8)])  # 20 draws, all below 0.8
    table = random_control_table(ratings, n_bootstrap=200, seed=0)
    row = table.iloc[0]
    assert row["target"] == "Conservation" and row["percentile"] == 100.0
    assert row["p_value"] == pytest.approx(1 / 21)
    assert row["ci_low"] == row["ci_high"] == 100.0  # every item identical
    assert (row["n_target_items"], row["n_opposite_items"], row["n_random"]) == (3, 3, 20)
    empty = pd.DataFrame(columns=["model"])
    effect = pd.DataFrame({"model": ["m"], "mode": ["value"], "separation": [0.8], "gamma": [2]})
    result = ValueSweepResult(
        {
            "ratings": ratings,
            "sweep": empty,
            "effect": effect,
            "random_control": table,
            "random_draws": empty,
            "fluency": empty,
            "answers": empty,
        }
    )
    (claim,) = result.claim()
    assert claim.value == 100.0 and (claim.ci_low, claim.ci_high) == (100.0, 100.0)
    gates = {g.name: g.passed for g in claim.gates}
    assert gates == {"enough_items": False, "enough_random_draws": True}  # 3 items per role
    assert "3 target and 3 opposite items" in claim.gates[0].detail


def test_pooled_row_over_several_targets():
    a = _ratings(0.8, [0.0] * 20)
    b = _ratings(-0.8, [0.0] * 20).assign(target="Openness to Change")
    table = random_control_table(pd.concat([a, b]), n_bootstrap=50, seed=0).set_index("target")
    assert table.loc["Conservation", "percentile"] == 100.0
    assert table.loc["Openness to Change", "percentile"] == 0.0
    assert table.loc[POOLED, "separation"] == pytest.approx(0.0)
    assert table.loc[POOLED, "percentile"] == 50.0  # ties with every draw
    assert table.loc[POOLED, "n_target_items"] == 6


def test_random_sets_match_each_layer_and_differ_between_draws():
    table = pd.DataFrame(
        {
            "layer": [0, 0, 0, 1, 2, 2],
            "neuron": [1, 5, 9, 3, 4, 8],
            "diff": [0.5, 0.4, 0.3, 0.6, 0.2, 0.2],
            "p_active": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
        }
    )
    draws = [edit_sets(table, table.iloc[:2], "random", width=64, seed=2 * k) for k in range(20)]
    for boost, clamp in draws:
        assert list(boost.layer) == list(table["layer"]) and len(clamp) == 2
        np.testing.assert_array_equal(boost.diff, table["diff"])  # same magnitudes
        np.testing.assert_array_equal(boost.p_active, table["p_active"])
        for layer in (0, 1, 2):
            picked = boost.neuron[boost.layer == layer]
            assert len(set(picked)) == len(picked) and ((0 <= picked) & (picked < 64)).all()
    distinct = {tuple(b.neuron) for b, _ in draws}
    assert len(distinct) == 20
    first = random_like(NeuronSet.from_table(table), 64, 0)
    assert list(draws[0][0].neuron) == list(first.neuron)  # draw 0 is the old single draw


def test_random_draws_only_at_the_chosen_gammas():
    from moralkit.neurons.sweep import SweepConfig, _conditions

    config = SweepConfig(
        gammas=[0, 1, 2], modes=["value", "random"], targets=["Conservation"], n_random=3
    )
    counts = pd.DataFrame(_conditions(config), columns=["t", "mode", "gamma", "draw"])
    every = counts.groupby(["mode", "gamma"]).size().to_dict()
    assert every == {
        ("random", 0.0): 1,
        ("random", 1.0): 3,
        ("random", 2.0): 3,
        ("value", 0.0): 1,
        ("value", 1.0): 1,
        ("value", 2.0): 1,
    }
    only_top = SweepConfig(**{**config.__dict__, "random_gammas": [2]})
    counts = pd.DataFrame(_conditions(only_top), columns=["t", "mode", "gamma", "draw"])
    assert counts.groupby(["mode", "gamma"]).size().get(("random", 1.0)) is None
    assert (counts["mode"] == "random").sum() == 1 + 3
    with pytest.raises(ValueError, match="not among gammas"):
        SweepConfig(gammas=[0, 1], random_gammas=[2])


def _steer_verdict(value_sep: float, n_items: int) -> str:
    """The recorded value_neurons_steer claim judged by claims.yaml's check."""
    ratings = _ratings(value_sep, [0.1 * k for k in range(-12, 8)], n_items=n_items)
    table = random_control_table(ratings, n_bootstrap=200, seed=0)
    empty = pd.DataFrame(columns=["model"])
    effect = pd.DataFrame({"model": ["m"], "mode": ["value"], "separation": [value_sep]})
    tables = {"ratings": ratings, "sweep": empty, "effect": effect.assign(gamma=2)}
    tables |= {"random_control": table, "random_draws": empty, "fluency": empty}
    (claim,) = ValueSweepResult({**tables, "answers": empty}).claim()
    return judge_claim(load_claims()["value_neurons_steer"], claim.fields()).verdict


def test_steer_claim_comes_out_each_way():
    assert _steer_verdict(0.8, n_items=10) == AGREES  # above all 20 random sets
    assert _steer_verdict(0.0, n_items=10) == DISAGREES  # 62.5th percentile
    assert _steer_verdict(0.8, n_items=3) == INCONCLUSIVE  # too few items per role
