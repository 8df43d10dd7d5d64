"""Chapter 09 end to end on a tiny model: items, maps, γ sweep, bridge, judged rubric."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from shared_data import needs_mirror
from synthetic import make_records

from moralkit.data.valuebench import (
    OPPOSITE_DIMENSION,
    SCHWARTZ_DIMENSIONS,
    ValueItemsConfig,
    assign_splits,
    keyed_rating,
    load_value_items,
)
from moralkit.models import load_model
from moralkit.neurons import (
    ContrastConfig,
    FoundationOverlapConfig,
    SweepConfig,
    locate_value_neurons,
    value_neurons,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _items() -> pd.DataFrame:
    """A PVQ-like item table (no data file needed): 4 items per dimension."""
    rows = []
    for d, dimension in enumerate(SCHWARTZ_DIMENSIONS):
        for k in range(4):
            rows.append(
                {
                    "item_id": f"x_{d}{k}",
                    "item": f"Statement {k} about {dimension.lower()} and what matters.",
                    "value": f"V{d}",
                    "dimension": dimension,
                    "opposite": OPPOSITE_DIMENSION[dimension],
                    "agreement": -1 if k == 3 else 1,
                    "split": "find" if k < 2 else "measure",
                }
            )
    return pd.DataFrame(rows)


@needs_mirror
def test_pvq40_items_grouping_and_disjoint_splits(offline_mirror):
    items = load_value_items(ValueItemsConfig(seed=1))
    assert len(items) == 40 and items["item_id"].is_unique
    counts = items.groupby("dimension").size().to_dict()
    assert counts == {
        "Openness to Change": 10,
        "Conservation": 13,
        "Self-Enhancement": 7,
        "Self-Transcendence": 10,
    }
    assert (items["opposite"] == items["dimension"].map(OPPOSITE_DIMENSION)).all()
    per_value = items.groupby("value")["split"].agg(set)
    assert all(s == {"find", "measure"} for s in per_value)
    assert not items["item"].str.contains("??", regex=False).any()
    dropped = load_value_items(ValueItemsConfig(hedonism=None))
    assert len(dropped) == 37 and "Hedonism" not in set(dropped["value"])


def test_splits_are_stratified_and_seeded():
    groups = pd.Series(["a"] * 5 + ["b"] * 2 + ["c"])
    split = assign_splits(groups, 0.5, seed=3)
    assert list(split[7:]) == ["measure"]
    for g in ("a", "b"):
        assert set(split[(groups == g).to_numpy()]) == {"find", "measure"}
    assert list(assign_splits(groups, 0.5, seed=3)) == list(split)
    np.testing.assert_allclose(keyed_rating(np.array([2.0, 5.0]), np.array([-1, 1]), 1, 6), [5, 5])


def test_value_neurons_sweep_and_bridge_on_a_tiny_model():
    """The chapter's recipe over one model; its parts agree with calling them directly."""
    loaded, items = load_model("tiny-llama"), _items()
    contrast = ContrastConfig(top_k=10, threshold=0.5, progress=False)
    config = SweepConfig(
        gammas=[0.0, 3.0],
        targets=["Openness to Change"],
        n_fluency_texts=2,
        answer_tokens=4,
        progress=False,
        n_random=4,
        n_bootstrap=50,
    )
    records = make_records(n_per_stratum=2, n_prototypes=2, n_neutral=2)
    loads = []
    maps, sweep, bridge, gate_points = value_neurons(
        ["tiny-llama"],
        items,
        records,
        contrast,
        sweep=config,
        bridge=FoundationOverlapConfig(max_records=6),
        load=lambda name: loads.append(name) or loaded,
    )
    assert loads == ["tiny-llama"] and list(gate_points.index) == ["tiny-llama"]
    assert gate_points.iloc[0, 0].startswith("SiLU(gate_proj(x))")
    neurons = maps["neurons"]
    pd.testing.assert_frame_equal(neurons, locate_value_neurons(loaded, items, contrast)["neurons"])
    assert set(neurons["dimension"]) == set(SCHWARTZ_DIMENSIONS)
    assert (neurons.groupby("dimension").size() >= 10).all()
    pair = neurons[neurons["dimension"].isin(["Openness to Change", "Conservation"])]
    assert not pair.duplicated(["layer", "neuron"]).any()  # opposite poles never share a neuron
    assert (maps["sparsity"]["n_gate_neurons"] == 3 * 64).all()
    assert (
        maps["per_layer"]
        .groupby("dimension")["n_neurons"]
        .sum()
        .equals(neurons.groupby("dimension").size().rename("n_neurons"))
    )
    (sparse,) = maps.claim()
    assert sparse.claim_id == "value_neurons_sparse"
    assert sparse.value == round(float(maps["sparsity"]["fraction"].max()), 4)

    ratings = sweep["ratings"]
    assert set(ratings["mode"]) == {"value", "reverse", "random"}
    assert (ratings.loc[ratings["gamma"] == 0, "shift"] == 0).all()
    assert (ratings.loc[ratings["gamma"] == 3, "shift"].abs() > 0).any()
    assert set(ratings["item_id"]) <= set(items.loc[items["split"] == "measure", "item_id"])
    edited = ratings[ratings["gamma"] == 3]
    assert edited.groupby("mode")["draw"].nunique().to_dict() == {
        "random": 4,
        "reverse": 1,
        "value": 1,
    }
    effect = sweep["effect"]
    assert set(effect["mode"]) == {"value", "reverse", "random"} and (effect["gamma"] == 3).all()
    assert effect.set_index("mode")["n_draws"].to_dict() == {"value": 1, "reverse": 1, "random": 4}
    assert len(sweep["fluency"]) == 2 * 2 and (sweep["fluency"]["perplexity"] > 1).all()
    assert len(sweep["answers"]) == 3

    # the random control: the value edit's separation among the four draws, by hand
    draws = sweep["random_draws"]
    top = draws[draws["gamma"] == 3]
    value_sep = float(top.loc[top["mode"] == "value", "separation"].iloc[0])
    random_seps = top.loc[top["mode"] == "random", "separation"].to_numpy()
    assert len(random_seps) == 4 and len(set(np.round(random_seps, 12))) > 1
    control = sweep["random_control"].set_index("gamma").loc[3.0]
    by_hand = 100 * ((random_seps < value_sep).sum() + 0.5 * (random_seps == value_sep).sum()) / 4
    assert control["percentile"] == pytest.approx(by_hand)
    assert control["separation"] == pytest.approx(value_sep)
    assert control["ci_low"] <= control["ci_high"]
    (steer,) = sweep.claim()
    assert steer.claim_id == "value_neurons_steer"
    assert steer.value == pytest.approx(round(by_hand, 2))
    assert (steer.ci_low, steer.ci_high) == (control["ci_low"], control["ci_high"])
    gates = {g.name: g.passed for g in steer.gates}
    assert gates == {"enough_items": False, "enough_random_draws": False}  # 2 items, 4 draws
    value_mode = effect[effect["mode"] == "value"]["separation"]
    assert steer.extra["separation"] == round(float(value_mode.mean()), 4)

    overlap = bridge["overlap"]
    assert len(overlap) == 5 * 2 * 4
    assert (overlap["shared"] <= overlap[["n_foundation", "n_value"]].min(axis=1)).all()
    (bridged,) = bridge.claim()
    assert bridged.claim_id == "foundation_value_neuron_overlap"
    ratio = (overlap["shared"] / overlap["expected_layer_matched"]).replace(np.inf, np.nan)
    assert bridged.value == pytest.approx(float(ratio.median()), abs=1e-4)


def test_judged_rubric_through_the_scripted_endpoint(tmp_path, monkeypatch):
    from moralkit.evaluation.judge import JudgeConfig
    from moralkit.evaluation.scripted_judge import serve_scripted_judge
    from moralkit.neurons.judging import judge_value_alignment, rubric_summary

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    answers = pd.DataFrame(
        {
            "model": "tiny",
            "target": "Conservation",
            "gamma": [0.0, 2.0],
            "item_id": "x",
            "item": "I like rules.",
            "answer": ["I agree, rules keep us safe.", "No, I want adventure."],
        }
    )

    def judge(prompt: str, attempt: int) -> str:
        return "5" if "keep us safe" in prompt else "2"

    with serve_scripted_judge(judge) as endpoint:
        config = JudgeConfig(
            model="scripted", base_url=endpoint.base_url, log_dir=str(tmp_path / "logs")
        )
        result = judge_value_alignment(answers, config)
    summary = rubric_summary(result).set_index("gamma")
    assert summary.loc[0.0, "mean_score"] == 5 and summary.loc[2.0, "mean_score"] == 2
    assert (summary["n_failed"] == 0).all()
    assert any("Value: Conservation" in call for call in endpoint.calls)
