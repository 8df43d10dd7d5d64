"""Independent checks of what the verdicts rest on: each quantity recomputed by hand (an explicit
loop, a closed form, or the model's arithmetic written out), not with the function under test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from moralkit.diagnostics.dimensional import (
    DimensionalConfig,
    fit_paper_probe,
    fit_ridge_probe,
    paper_split,
)
from moralkit.diagnostics.resampling import nan_percentile, two_sided_p
from moralkit.evaluation import bootstrap as bs
from moralkit.models.tiny import build_tiny_model
from moralkit.neurons.edit import EditConfig, NeuronSet, edit_neurons
from moralkit.neurons.overlap import overlap_stats

# ---------------------------------------------------------------- categorical permutation null


def _tails_by_loop(null: list[float], observed: float) -> tuple[float, float]:
    n_le = sum(1 for v in null if v <= observed)
    n_ge = sum(1 for v in null if v >= observed)
    return (1 + n_le) / (len(null) + 1), (1 + n_ge) / (len(null) + 1)


def test_permutation_p_value_against_an_explicit_loop():
    null = [-0.2, -0.1, 0.0, 0.1, 0.2]
    low, high = _tails_by_loop(null, 0.2)
    assert high == pytest.approx(2 / 6)  # the example: one null value >= .2, +1
    assert low == 1.0
    column = np.array(null)[:, None]
    assert two_sided_p(column, np.array([0.2]))[0] == pytest.approx(min(1, 2 * min(low, high)))
    rng = np.random.default_rng(3)
    draws = rng.normal(size=(199, 4))
    for observed in (-3.0, -0.5, 0.0, 0.4, 2.5):
        got = two_sided_p(draws, np.full(4, observed))
        for k in range(4):
            lo, hi = _tails_by_loop(list(draws[:, k]), observed)
            assert got[k] == pytest.approx(min(1.0, 2 * min(lo, hi)))


def _percentile_by_hand(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default), written out."""
    ordered = sorted(values)
    pos = q / 100 * (len(ordered) - 1)
    below = math.floor(pos)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (pos - below) * (ordered[above] - ordered[below])


def test_null_band_percentiles_by_hand():
    null = [-0.2, -0.1, 0.0, 0.1, 0.2]
    column = np.array(null)[:, None]
    assert nan_percentile(column, 2.5)[0] == pytest.approx(-0.19)
    assert nan_percentile(column, 97.5)[0] == pytest.approx(0.19)
    rng = np.random.default_rng(4)
    values = rng.normal(size=37)
    for q in (2.5, 50, 97.5):
        assert nan_percentile(values[:, None], q)[0] == pytest.approx(
            _percentile_by_hand(list(values), q)
        )
    empty = np.full((5, 1), np.nan)
    assert np.isnan(nan_percentile(empty, 2.5)[0])


# ---------------------------------------------------------------- probes scored out of sample


def test_paper_split_is_disjoint_and_70_10_20():
    train, val, test = paper_split(200, DimensionalConfig())
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert sorted([*train, *val, *test]) == list(range(200))
    assert (len(train), len(val), len(test)) == (140, 20, 40)


def _memorisable(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One private feature per record and an unrelated target: a probe fitted on a record
    reproduces it, so only an out-of-sample score is near or below zero."""
    rng = np.random.default_rng(seed)
    return np.eye(n, dtype=np.float32), rng.normal(size=(n, 10)).astype(np.float32)


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return float(np.mean(1 - ss_res / ss_tot))


def test_paper_probe_is_scored_on_its_test_rows_only():
    X, Y = _memorisable()
    config = DimensionalConfig(max_epochs=30)
    fit = fit_paper_probe(X, Y, config, seed=0)
    _, _, test = paper_split(len(X), config)
    assert len(fit.y_true) == len(test)  # n_eval: the test part, not every record
    assert np.array_equal(fit.y_true, Y[test])
    assert _r2(fit.y_true, fit.y_pred) < 0.05  # a test row's own feature was never trained


def test_ridge_probe_predictions_are_out_of_fold():
    X, Y = _memorisable()
    fit = fit_ridge_probe(X.astype(float), Y.astype(float), DimensionalConfig(cv_folds=5))
    assert len(fit.y_true) == len(X) and np.array_equal(fit.y_true, Y)
    assert _r2(fit.y_true, fit.y_pred) < 0.05
    # the same model scored in sample would look like a good probe
    from sklearn.linear_model import Ridge

    inside = Ridge(alpha=1e-3).fit(X, Y).predict(X)
    assert _r2(Y, inside) > 0.9


# ---------------------------------------------------------------- bootstrap intervals


def test_bootstrap_of_a_constant_sample_has_zero_width():
    estimate, low, high = bs.mean_interval(np.full(50, 0.3), 1000, 0)
    assert (estimate, low, high) == pytest.approx((0.3, 0.3, 0.3))


def test_bootstrap_of_a_constant_paired_shift_is_that_shift():
    rng = np.random.default_rng(5)
    a = rng.normal(size=80)
    d, low, high = bs.paired_difference_interval(a + 0.25, a, 1000, 0)
    assert d == pytest.approx(0.25) and low == pytest.approx(0.25) and high == pytest.approx(0.25)


def test_bootstrap_of_a_proportional_ratio_is_that_ratio():
    rng = np.random.default_rng(6)
    den = rng.uniform(1, 5, size=40)
    ratio, low, high = bs.ratio_interval(2.5 * den, den, 1000, 0)
    assert (ratio, low, high) == pytest.approx((2.5, 2.5, 2.5))


def test_bootstrap_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    hits = 0
    for seed in range(200):
        x = rng.normal(loc=1.0, size=60)
        _, low, high = bs.mean_interval(x, 1000, seed)
        hits += low <= 1.0 <= high
    assert 0.88 <= hits / 200 <= 0.99  # percentile interval, n = 60: slightly below 0.95


# ---------------------------------------------------------------- hypergeometric overlap p


def _hypergeom_sf_by_hand(shared: int, total: int, n_a: int, n_b: int) -> float:
    """P(X >= shared) for X ~ Hypergeometric(total, n_a, n_b), summed term by term."""
    return sum(
        math.comb(n_a, k) * math.comb(total - n_a, n_b - k) / math.comb(total, n_b)
        for k in range(shared, min(n_a, n_b) + 1)
    )


def test_overlap_p_value_and_baselines_by_hand():
    n_layers, width = 2, 10
    a = pd.DataFrame({"layer": [0, 0, 0, 1, 1], "neuron": [1, 2, 3, 4, 5]})
    b = pd.DataFrame({"layer": [0, 0, 1, 1], "neuron": [2, 3, 5, 9]})
    got = overlap_stats(a, b, n_layers, width)
    assert got["shared"] == 3  # (0, 2), (0, 3), (1, 5)
    assert got["jaccard"] == pytest.approx(3 / (5 + 4 - 3))
    assert got["expected_random"] == pytest.approx(5 * 4 / 20)
    assert got["expected_layer_matched"] == pytest.approx((3 * 2 + 2 * 2) / 10)
    assert got["p_value"] == pytest.approx(_hypergeom_sf_by_hand(3, 20, 5, 4))
    disjoint = overlap_stats(a, pd.DataFrame({"layer": [1], "neuron": [0]}), n_layers, width)
    assert disjoint["shared"] == 0 and disjoint["p_value"] == pytest.approx(1.0)


# ---------------------------------------------------------------- the neuron edit, by hand


def test_neuron_edit_matches_the_rule_written_out():
    torch.manual_seed(0)
    model = build_tiny_model("tiny-llama").eval()
    mlp = model.model.layers[0].mlp
    x = torch.randn(1, 3, model.config.hidden_size)
    boost = NeuronSet(np.array([0, 0]), np.array([3, 7]), np.array([0.1, 0.4]), np.array([0.5, 1]))
    clamp = NeuronSet(np.array([0]), np.array([11]), np.array([0.2]), np.array([0.9]))
    config = EditConfig(gamma=2.0, edit_fraction=1.0)
    with torch.no_grad():
        gate = torch.nn.functional.silu(mlp.gate_proj(x))
        up = mlp.up_proj(x)
        edited = gate.clone()
        edited[..., 11] = torch.minimum(edited[..., 11], torch.tensor(0.0))
        for neuron, diff, p in ((3, 0.1, 0.5), (7, 0.4, 1.0)):
            edited[..., neuron] += p * 2.0 / (1 + math.exp(-10 * (diff - 0.15)))
        expected = mlp.down_proj(edited * up)
        plain = mlp.down_proj(gate * up)
        with edit_neurons(model, boost, clamp, config):
            got = mlp(x)
        after = mlp(x)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-4)  # the edit did something
    assert torch.equal(after, plain)  # and is gone after the block
