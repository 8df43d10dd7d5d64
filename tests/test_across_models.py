"""Across-model statistics (paper-methods §3.2 substitute) with planted answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic import make_activations, make_records

from moralkit.diagnostics.across_models import (
    alignment_test,
    categorical_curves,
    collect_headlines,
    curves_from_table,
    gradient_curves,
    paired_condition_test,
    paired_differences,
    scaling_test,
    sign_flip_p,
)
from moralkit.diagnostics.categorical import categorical_indifference
from moralkit.diagnostics.gradient import gradient_indifference


def _headlines(values: dict[str, float]) -> pd.DataFrame:
    curves = pd.DataFrame(
        [(m, 0, 0.5, v) for m, v in values.items()],
        columns=["model", "layer", "relative_depth", "score"],
    )
    return collect_headlines(curves_from_table(curves, "toy", {"score": "higher"}))


def test_collect_headlines_picks_best_and_anchored_layers():
    table = pd.DataFrame(
        {
            "model": ["m"] * 3,
            "layer": [0, 1, 2],
            "relative_depth": [1 / 3, 2 / 3, 1.0],
            "offdiag": [0.5, 0.1, 0.3],
            "vv": [0.0, 0.4, -0.2],
        }
    )
    curves = curves_from_table(
        table, "cat", {"offdiag": "lower", "vv": "lower"}, anchors={"vv": "offdiag"}
    )
    heads = collect_headlines(curves).set_index("metric")
    assert heads.loc["offdiag", "layer"] == 1
    assert heads.loc["vv", "layer"] == 1  # read at the anchor's best layer, not its own min
    assert heads.loc["vv", "value"] == pytest.approx(0.4)


def test_curves_from_real_results():
    records = make_records(n_per_stratum=6, n_prototypes=10, n_neutral=10)
    acts = make_activations(records, {0: "shared", 1: "opposed"}, width=16, model_id="toy")
    cat = categorical_indifference(acts, records, n_permutations=10, n_bootstrap=10, progress=False)
    grad = gradient_indifference(acts, records, n_bootstrap=0, progress=False)
    heads = collect_headlines(categorical_curves(cat), gradient_curves(grad))
    assert set(heads["metric"]) == {
        "mean_offdiag_cosine",
        "mean_virtue_vice_cosine",
        "spearman_paper",
        "spearman_heldout",
    }
    vv = heads[heads["metric"] == "mean_virtue_vice_cosine"].iloc[0]
    assert vv["layer"] == cat.optimal_layer == 1
    assert vv["value"] < -0.9


def test_scaling_test_recovers_a_monotone_relation():
    params = {f"m{i}": p for i, p in enumerate([0.1, 0.5, 1, 4, 8, 14, 32])}
    heads = _headlines({m: np.log10(p) * 0.2 + 0.1 for m, p in params.items()})
    out = scaling_test(heads, params, n_bootstrap=500).iloc[0]
    assert out["n"] == 7
    assert out["spearman"] == pytest.approx(1.0)
    assert out["ci_low"] == pytest.approx(1.0)
    assert out["p_value"] < 0.01
    assert out["note"] == ""


def test_scaling_test_no_relation_and_small_n():
    rng = np.random.default_rng(0)
    params = {f"m{i}": float(p) for i, p in enumerate(np.geomspace(0.1, 200, 12))}
    heads = _headlines({m: rng.normal() for m in params})
    out = scaling_test(heads, params, n_bootstrap=500).iloc[0]
    assert out["ci_low"] < 0 < out["ci_high"] or out["p_value"] > 0.05
    small = scaling_test(_headlines({"a": 1.0, "b": 2.0, "c": 3.0}), {"a": 1, "b": 2, "c": 3})
    assert "no inference" in small["note"].iloc[0]
    assert np.isnan(small["ci_low"].iloc[0])


def test_alignment_test_detects_a_consistent_shift():
    rng = np.random.default_rng(1)
    families = [f"fam{i}" for i in range(8)]
    base = {f"{f}-base": rng.normal() for f in families}
    values = {**base, **{f"{f}-instruct": base[f"{f}-base"] + 0.5 for f in families}}
    groups = {m: (m.rsplit("-", 1)[0], m.rsplit("-", 1)[1]) for m in values}
    out = alignment_test(_headlines(values), groups, contrasts=[("instruct", "base")])
    row = out.iloc[0]
    assert row["n_pairs"] == 8
    assert row["mean_difference"] == pytest.approx(0.5)
    assert row["p_value"] == pytest.approx(2 / 2**8)  # exact: only the all-positive patterns


def test_alignment_test_no_shift_gives_large_p():
    rng = np.random.default_rng(2)
    families = [f"fam{i}" for i in range(10)]
    base = {f"{f}-base": rng.normal() for f in families}
    noise = rng.normal(0, 0.1, len(families))
    noise -= noise.mean()  # zero mean shift by construction
    values = {**base}
    values.update(
        {f"{f}-instruct": base[f"{f}-base"] + e for f, e in zip(families, noise, strict=True)}
    )
    groups = {m: tuple(m.rsplit("-", 1)) for m in values}
    out = alignment_test(_headlines(values), groups, contrasts=[("instruct", "base")])
    assert out["p_value"].iloc[0] > 0.5


def test_paired_differences_pairs_within_family_only():
    values = {"a-base": 1.0, "a-instruct": 3.0, "b-instruct": 5.0, "b-guard": 4.0}
    groups = pd.DataFrame(
        [(m, *m.split("-")) for m in values], columns=["model", "family", "stage"]
    )
    diffs = paired_differences(_headlines(values), groups)
    assert len(diffs) == 2
    got = diffs.set_index("contrast")["difference"]
    assert got["instruct − base"] == pytest.approx(2.0)
    assert got["guard − instruct"] == pytest.approx(-1.0)


def test_sign_flip_exact_and_monte_carlo_agree():
    d = np.array([0.3, 0.5, -0.1, 0.4, 0.2, 0.6, 0.1, 0.35, -0.05, 0.25, 0.3, 0.2, 0.15, 0.4])
    exact = sign_flip_p(d)
    mc = sign_flip_p(np.concatenate([d, d, d]) / 1.0, n_permutations=20000)
    assert exact < 0.01 and mc < 0.01
    assert sign_flip_p([1.0]) == 1.0


def test_paired_condition_test():
    layers = np.arange(20)
    trained = 0.5 + 0.01 * layers
    shifted = paired_condition_test(trained, trained - 0.2, n_permutations=5000)
    assert shifted["mean_difference"] == pytest.approx(0.2)
    assert shifted["p_value"] < 0.001
    assert shifted["ci_low"] == pytest.approx(0.2) and shifted["ci_high"] == pytest.approx(0.2)
    rng = np.random.default_rng(3)
    same = paired_condition_test(trained, trained + rng.normal(0, 0.05, 20))
    assert same["p_value"] > 0.05
    assert same["ci_low"] < 0 < same["ci_high"]
    with pytest.raises(ValueError, match="shape"):
        paired_condition_test([1, 2, 3], [1, 2])


def test_figures_render():
    import matplotlib.pyplot as plt

    from moralkit.diagnostics.across_models import compare_conditions
    from moralkit.figures.across_models import (
        plot_condition_differences,
        plot_headline_curves,
        plot_paired_differences,
        plot_scaling,
    )

    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8)
    curves = []
    for name, plan in (("a", "opposed"), ("b", "random")):
        acts = make_activations(records, {0: plan, 1: "shared"}, width=16, model_id=name)
        res = categorical_indifference(
            acts, records, n_permutations=5, n_bootstrap=5, progress=False
        )
        curves.append(categorical_curves(res))
    heads = collect_headlines(*curves)
    pairs = paired_differences(heads, {"a": ("f", "base"), "b": ("f", "instruct")})
    for fig in (
        plot_headline_curves(pd.concat(curves)),
        plot_scaling(heads, {"a": 0.1, "b": 1.0}, "mean_offdiag_cosine"),
        plot_paired_differences(pairs),
        plot_condition_differences(compare_conditions(pd.concat(curves), {"a vs b": ("a", "b")})),
    ):
        plt.close(fig)


def test_model_groups_pairs_paper_models():
    from moralkit.diagnostics.across_models import model_groups

    groups = model_groups(["qwen3-8b-base", "qwen3-8b", "qwen3guard-gen-8b", "qwen3-4b"])
    assert groups["stage"].tolist() == ["base", "instruct", "guard", "instruct"]
    assert groups["family"].nunique() == 2
    values = {"qwen3-8b-base": 0.2, "qwen3-8b": 0.5, "qwen3guard-gen-8b": 0.4, "qwen3-4b": 0.9}
    diffs = paired_differences(_headlines(values), groups).set_index("contrast")
    assert diffs.loc["instruct − base", "difference"] == pytest.approx(0.3)
    assert diffs.loc["guard − instruct", "difference"] == pytest.approx(-0.1)
    with pytest.raises(KeyError, match="unknown model"):
        model_groups(["no-such-model"])


def test_compare_conditions_pairs_layers_and_detects_a_shift():
    from moralkit.diagnostics.across_models import compare_conditions

    layers = np.arange(12)
    table = pd.DataFrame(
        {
            "model": ["trained"] * 12 + ["twin"] * 12,
            "layer": np.concatenate([layers, layers]),
            "relative_depth": np.concatenate([layers, layers]) / 12,
            "score": np.concatenate([0.6 + 0.01 * layers, 0.1 + 0.01 * layers[::-1]]),
        }
    )
    curves = curves_from_table(table, "toy", {"score": "higher"})
    out = compare_conditions(curves, {"twin": ("trained", "twin")}, n_permutations=2000)
    row = out.iloc[0]
    assert row["paired_over"] == "layers" and row["n_pairs"] == 12
    assert row["mean_difference"] == pytest.approx(0.5)
    assert row["p_value"] < 0.001


def test_matched_subset_aligns_rows_and_condition_config():
    from moralkit.diagnostics.across_models import matched_subset

    records = make_records(n_per_stratum=20, n_prototypes=20, n_neutral=20)
    acts = make_activations(records, {0: "random"}, width=8)
    subset, sub_acts = matched_subset(records, acts, sample_scale=0.02, seed=1)
    assert 0 < len(subset) < len(records)
    assert sub_acts.n_texts == len(subset)
    rows = records.table.reset_index().set_index("record_id").loc[subset.table["record_id"]]
    assert np.allclose(sub_acts.get(0), acts.get(0)[rows["index"].to_numpy()])
