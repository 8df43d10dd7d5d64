"""Gradient indifference (paper §2.3) on synthetic activations with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from synthetic import make_activations, make_records

from moralkit.diagnostics.centring import category_centres, centre_activations
from moralkit.diagnostics.gradient import (
    GradientConfig,
    GradientResult,
    gradient_indifference,
    gradient_pairs,
    split_prototypes,
)
from moralkit.diagnostics.resampling import bootstrap_spearman
from moralkit.foundations import DIMENSIONS
from moralkit.results import HEADLINE_COLUMNS


@pytest.fixture(scope="module")
def records():
    return make_records(n_per_stratum=12, n_prototypes=12, n_neutral=20, seed=0)


def _overall(result, variant, layer):
    t = result["by_layer"]
    row = t[(t["variant"] == variant) & (t["layer"] == layer) & (t["category"] == "overall")]
    assert len(row) == 1
    return row.iloc[0]


def test_planted_gradient_gives_high_spearman(records):
    # h = t * c + noise: the cosine to the own centre rises with typicality t.
    acts = make_activations(records, {0: "random", 1: "none"}, width=64, noise=0.3, seed=1)
    res = gradient_indifference(acts, records, GradientConfig(n_bootstrap=100))
    for variant in ("paper", "heldout"):
        planted = _overall(res, variant, 0)
        assert planted["spearman"] > 0.9
        assert planted["ci_low"] <= planted["spearman"] <= planted["ci_high"]
        assert planted["pearson_ci_low"] < planted["pearson"] < planted["pearson_ci_high"]
    # No signal and no circularity: the held-out rho is near zero.
    assert abs(_overall(res, "heldout", 1)["spearman"]) < 0.15
    peaks = res["peaks"][(res["peaks"]["category"] == "overall")]
    assert set(peaks["layer"]) == {0}


def test_heldout_removes_circularity(records):
    # Pure noise: a prototype still leans toward a centre it helped build, so the paper
    # variant shows a spurious positive rho that the held-out variant does not.
    acts = make_activations(records, {0: "none"}, width=64, seed=2)
    res = gradient_indifference(acts, records, GradientConfig(n_bootstrap=100))
    paper, heldout = _overall(res, "paper", 0), _overall(res, "heldout", 0)
    assert paper["spearman"] > 0.2
    assert paper["ci_low"] > 0
    assert abs(heldout["spearman"]) < 0.15
    assert heldout["ci_low"] < 0 < heldout["ci_high"]


def test_neutral_records_enter_twice(records):
    X = np.random.default_rng(0).normal(size=(len(records), 16))
    Xc = centre_activations(X)
    centres = category_centres(Xc, records)
    pairs = gradient_pairs(Xc, records, centres)
    table = records.table
    n_polar = int((table["pole"] != "neutral").sum())
    n_neutral = int((table["pole"] == "neutral").sum())
    assert len(pairs) == n_polar + 2 * n_neutral
    neutral = pairs[pairs["neutral"]]
    assert (neutral["y"] == 0).all()
    assert neutral.groupby("record").size().eq(2).all()
    # A neutral care record is compared with the care and the harm centre.
    first = int(table.index[(table["pole"] == "neutral") & (table["foundation"] == "care")][0])
    assert sorted(neutral.loc[neutral["record"] == first, "category"]) == ["care", "harm"]
    # Overall n in the result counts neutral records twice.
    acts = make_activations(records, {0: "random"}, width=16, seed=3)
    res = gradient_indifference(acts, records, GradientConfig(variants="paper", n_bootstrap=0))
    assert _overall(res, "paper", 0)["n"] == n_polar + 2 * n_neutral


def test_own_category_cosine_matches_direct_computation(records):
    X = np.random.default_rng(1).normal(size=(len(records), 8))
    Xc = centre_activations(X)
    centres = category_centres(Xc, records)
    pairs = gradient_pairs(Xc, records, centres)
    row = pairs[~pairs["neutral"]].iloc[7]
    c = centres[DIMENSIONS.index(row["category"])]
    h = Xc[row["record"]]
    assert np.isclose(row["x"], h @ c / np.linalg.norm(h) / np.linalg.norm(c))


def test_split_prototypes_halves_each_category(records):
    half = split_prototypes(records, seed=4)
    table = records.table
    assert not half[~table["is_prototype"].to_numpy()].any()
    per_cat = table[half].groupby("category").size()
    assert set(per_cat.index) == set(DIMENSIONS)
    assert (per_cat == 6).all()
    assert not np.array_equal(half, split_prototypes(records, seed=5))


def test_heldout_excludes_the_centre_half(records):
    acts = make_activations(records, {0: "random"}, width=16, seed=3)
    res = gradient_indifference(acts, records, GradientConfig(variants="heldout", n_bootstrap=0))
    table = records.table
    n_all = int((table["pole"] != "neutral").sum() + 2 * (table["pole"] == "neutral").sum())
    assert _overall(res, "heldout", 0)["n"] == n_all - 60  # 6 prototypes x 10 categories


def test_bootstrap_spearman_matches_scipy_on_resamples():
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    x[:4] = x[4]  # ties in x as well
    y = rng.integers(0, 5, 40).astype(float)
    draws = rng.integers(0, 40, (15, 40))
    expected = [stats.spearmanr(x[d], y[d])[0] for d in draws]
    assert np.allclose(bootstrap_spearman(x, y, draws), expected)


def test_per_category_rows_and_schema(records):
    acts = make_activations(records, {0: "random", 2: "random"}, n_model_layers=4, seed=6)
    res = gradient_indifference(acts, records, GradientConfig(n_bootstrap=20))
    t = res["by_layer"]
    assert set(t["category"]) == {"overall", *DIMENSIONS}
    assert len(t) == 2 * 2 * 11
    cols = {"model", "layer", "relative_depth", "variant", "spearman", "ci_low", "ci_high"}
    assert cols | {"pearson", "pearson_ci_low", "pearson_ci_high", "n"} <= set(t.columns)
    assert np.isclose(t.loc[t["layer"] == 2, "relative_depth"].iloc[0], 0.75)


def test_unknown_variant_raises(records):
    with pytest.raises(ValueError, match="variants"):
        GradientConfig(variants="bogus")
    with pytest.raises(ValueError, match="n_bootstrap"):
        GradientConfig(n_bootstrap=-1)


def test_figures_render(records):
    import matplotlib.pyplot as plt

    from moralkit.figures.gradient import plot_category_peaks, plot_gradient_by_depth

    acts = make_activations(records, {0: "random", 1: "none"}, width=16, seed=7)
    res = gradient_indifference(acts, records, GradientConfig(n_bootstrap=10))
    fig = plot_gradient_by_depth(res["by_layer"])
    assert len(fig.axes[0].lines) >= 2  # one line per variant
    plt.close(fig)
    plt.close(plot_category_peaks(res["peaks"], variant="heldout"))


def test_best_headline_and_claim_read_the_overall_peak(records):
    acts = make_activations(records, {0: "none", 1: "random"}, width=32, seed=8)
    res = gradient_indifference(acts, records, GradientConfig(n_bootstrap=20))
    best = res.best()
    assert set(best["variant"]) == {"paper", "heldout"}
    assert (best["category"] == "overall").all() and (best["layer"] == 1).all()
    head = res.headline().set_index("metric")
    assert list(res.headline().columns) == list(HEADLINE_COLUMNS)
    assert set(head.index) == {"spearman_paper", "spearman_heldout"}
    assert head.loc["spearman_heldout", "value"] == pytest.approx(
        best.set_index("variant").loc["heldout", "spearman"]
    )
    (claim,) = res.claim()
    assert claim.claim_id == "gradient_indifference"
    assert claim.value == pytest.approx(head.loc["spearman_paper", "value"], abs=1e-4)
    # the claim's interval comes from n_bootstrap_headline (1,000) resamples at the peak layer
    peak = res["by_layer"].query("variant == 'paper' and category == 'overall' and layer == 1")
    assert peak["n_bootstrap"].iloc[0] == 1000
    assert claim.ci_low == pytest.approx(peak["ci_low"].iloc[0], abs=1e-4)
    assert claim.ci_low <= claim.value <= claim.ci_high
    other = res["by_layer"].query("category == 'overall' and layer == 0")
    assert (other["n_bootstrap"] == 20).all()
    assert res.verdict_layers() == {"synthetic": 1}


def test_concat_and_layer_selection(records):
    config = GradientConfig(variants=("heldout",), n_bootstrap=0, layers="every:2")
    a = make_activations(records, {0: "none", 2: "random"}, n_model_layers=3, model_id="a")
    b = make_activations(records, {0: "random", 2: "none"}, n_model_layers=3, model_id="b")
    both = GradientResult.concat([gradient_indifference(x, records, config) for x in (a, b)])
    assert both.best().set_index("model")["layer"].to_dict() == {"a": 2, "b": 0}
    assert both.models == ["a", "b"]


def test_refuses_a_ground_truth_without_typicality(records):
    from moralkit.records import MoralRecords

    flat = MoralRecords(records.table, {**records.provenance, "has_typicality": False})
    acts = make_activations(flat, {0: "random"}, width=16, noise=0.3, seed=1)
    with pytest.raises(ValueError, match="no graded typicality"):
        gradient_indifference(acts, flat, GradientConfig(n_bootstrap=10))
