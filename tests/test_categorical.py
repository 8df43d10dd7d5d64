"""Categorical indifference (paper §2.2) on synthetic activations with known answers."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from synthetic import make_activations, make_records

from moralkit.claims import load_claims
from moralkit.diagnostics.categorical import (
    CategoricalConfig,
    CategoricalResult,
    categorical_indifference,
)
from moralkit.diagnostics.centring import category_centres, centre_activations
from moralkit.diagnostics.planted import planted_power
from moralkit.diagnostics.power import PowerConfig
from moralkit.diagnostics.resampling import lower_tail_p
from moralkit.foundations import DIMENSIONS, FOUNDATIONS
from moralkit.results import HEADLINE_COLUMNS


@pytest.fixture(scope="module")
def records():
    return make_records(n_per_stratum=10, n_prototypes=30, n_neutral=20, seed=1)


@pytest.fixture(scope="module")
def result(records):
    plan = {0: "shared", 1: "identical", 2: "opposed", 3: "random", 4: "none"}
    acts = make_activations(records, plan, n_model_layers=6, width=64, seed=2)
    return categorical_indifference(
        acts, records, CategoricalConfig(n_permutations=200, n_bootstrap=200)
    )


def _vv(result, layer):
    table = result["virtue_vice"]
    return table[table["layer"] == layer].set_index("foundation")


def test_centring_removes_the_mean():
    X = np.random.default_rng(0).normal(3.0, 1.0, size=(50, 8)).astype(np.float32)
    Xc = centre_activations(X)
    assert np.allclose(Xc.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(X - Xc, X.mean(axis=0), atol=1e-5)


def test_category_centres_are_prototype_means(records):
    X = np.random.default_rng(0).normal(size=(len(records), 5))
    centres = category_centres(X, records)
    table = records.table
    for i, c in enumerate(DIMENSIONS):
        rows = (table["category"] == c) & table["is_prototype"]
        assert np.allclose(centres[i], X[rows.to_numpy()].mean(axis=0))


def test_category_without_prototypes_gives_nan_and_warns():
    records = make_records(n_prototypes=5, prototypes={"harm": 0}, seed=0)
    X = np.random.default_rng(0).normal(size=(len(records), 4))
    with pytest.warns(UserWarning, match="harm"):
        centres = category_centres(X, records)
    assert np.isnan(centres[DIMENSIONS.index("harm")]).all()
    assert np.isfinite(centres[DIMENSIONS.index("care")]).all()


def test_opposed_centres_give_cosine_minus_one(result):
    assert (_vv(result, 2)["cosine"] < -0.98).all()


def test_identical_centres_give_cosine_one(result):
    assert (_vv(result, 1)["cosine"] > 0.98).all()


def test_optimal_layer_is_the_planted_one(result):
    assert result.optimal_layers["synthetic"] == 2
    assert result["summary"]["optimal_layer"].iloc[0] == 2
    assert result["by_layer"].loc[result["by_layer"]["is_optimal"], "layer"].tolist() == [2]
    assert len(result.at_optimal_layer()) == len(FOUNDATIONS)


def test_null_band_brackets_zero_for_pure_noise(result):
    vv = _vv(result, 4)
    assert (vv["null_low"] < 0).all() and (vv["null_high"] > 0).all()
    assert abs(vv["null_mean"]).max() < 0.15
    # Most foundations' observed cosines lie inside the null band when there is no signal.
    inside = vv["cosine"].between(vv["null_low"], vv["null_high"])
    assert inside.sum() >= 4


def test_null_band_excludes_a_planted_strong_effect(result):
    vv = _vv(result, 2)
    assert (vv["cosine"] < vv["null_low"]).all()
    assert (vv["p_null"] < 0.05).all()
    assert not bool(result["summary"]["inside_null"].iloc[0])


def test_bootstrap_interval_contains_the_true_value(result):
    opposed, identical = _vv(result, 2), _vv(result, 1)
    assert ((opposed["ci_low"] <= -1.0 + 1e-9) & (opposed["ci_high"] >= -1.0)).all()
    assert ((identical["ci_low"] <= 1.0) & (identical["ci_high"] >= 1.0 - 1e-9)).all()
    assert (result["virtue_vice"]["ci_low"] <= result["virtue_vice"]["ci_high"]).all()


def test_bootstrap_interval_covers_a_known_intermediate_cosine():
    # Virtue and vice directions at 60 degrees; the true centred-centre cosine is what the
    # same construction gives without noise.
    rng = np.random.default_rng(5)
    width = 64
    base = rng.standard_normal((10, width))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    dirs = base.copy()
    for k in range(5):
        u = base[2 * k]
        w = base[2 * k + 1] - (base[2 * k + 1] @ u) * u
        w /= np.linalg.norm(w)
        dirs[2 * k + 1] = 0.5 * u + np.sqrt(0.75) * w
    records = make_records(n_per_stratum=5, n_prototypes=40, n_neutral=10, seed=3)
    config = CategoricalConfig(n_permutations=20, n_bootstrap=300)
    clean = make_activations(records, {0: dirs}, width=width, noise=0.0, signal=3.0, seed=4)
    truth = categorical_indifference(clean, records, config)["virtue_vice"]["cosine"].to_numpy()
    assert 0.1 < truth.min() and truth.max() < 0.9  # genuinely intermediate
    noisy = make_activations(records, {0: dirs}, width=width, noise=2.0, signal=3.0, seed=4)
    vv = categorical_indifference(noisy, records, config)["virtue_vice"]
    covered = (vv["ci_low"].to_numpy() <= truth) & (vv["ci_high"].to_numpy() >= truth)
    assert covered.sum() >= 4
    assert (vv["ci_high"] - vv["ci_low"]).min() > 0.01  # a real interval, not a point


def test_centre_cosine_matrix_is_long_and_symmetric(result):
    cc = result["centre_cosines"]
    assert len(cc) == 5 * 100
    layer = cc[cc["layer"] == 2].pivot(index="category_a", columns="category_b", values="cosine")
    assert np.allclose(layer.to_numpy(), layer.to_numpy().T)
    assert np.allclose(np.diag(layer.to_numpy()), 1.0)
    assert {"model", "layer", "relative_depth"} <= set(cc.columns)


def test_tables_carry_model_layer_depth(result):
    vv = result["virtue_vice"]
    assert {"model", "layer", "relative_depth", "n_virtue_prototypes"} <= set(vv.columns)
    assert np.isclose(vv.loc[vv["layer"] == 2, "relative_depth"].iloc[0], 3 / 6)
    assert (vv["n_virtue_prototypes"] == 30).all()


def test_bad_layers_and_misaligned_records_raise(records):
    acts = make_activations(records, {0: "random"}, n_model_layers=6, width=8)
    with pytest.raises(ValueError, match="not stored"):
        categorical_indifference(acts, records, CategoricalConfig(layers=[3]))
    with pytest.raises(ValueError, match="out of range"):
        categorical_indifference(acts, records, CategoricalConfig(layers=[6]))
    with pytest.raises(ValueError, match="aligned"):
        categorical_indifference(acts, records.where(records.table.index < 10))


def test_figures_render(result):
    import matplotlib.pyplot as plt

    from moralkit.figures.categorical import (
        plot_centre_heatmap,
        plot_optimal_layer_bars,
        plot_virtue_vice_by_depth,
    )

    figs = [
        plot_virtue_vice_by_depth(result["virtue_vice"]),
        plot_centre_heatmap(result["centre_cosines"], result.optimal_layers["synthetic"]),
        plot_optimal_layer_bars(result.at_optimal_layer()),
    ]
    assert len(figs[0].axes) >= 5
    for fig in figs:
        plt.close(fig)
    with pytest.raises(ValueError, match="lacks columns"):
        plot_virtue_vice_by_depth(result["by_layer"])


def test_standardise_gives_unit_variance_columns():
    X = np.random.default_rng(0).normal(0, [1.0, 10.0, 1000.0], size=(200, 3))
    Z = centre_activations(X, standardise=True)
    assert np.allclose(Z.std(axis=0), 1.0)
    assert np.allclose(Z.mean(axis=0), 0.0)


def test_dimension_dominance_flags_a_massive_dimension(records):
    from moralkit.activation_set import ActivationSet
    from moralkit.diagnostics.centring import dimension_dominance

    acts = make_activations(records, {0: "random", 1: "random"}, width=32, seed=3)
    arr = acts.arrays["mean"].copy()
    arr[1, :, 7] += np.random.default_rng(0).normal(0, 100.0, arr.shape[1])  # massive dim
    acts = ActivationSet({"mean": arr}, acts.layers, acts.n_model_layers)
    table = dimension_dominance(acts, k=1).set_index("layer")
    assert table.loc[1, "top_dimensions"] == "7"
    assert table.loc[1, "top_k_variance_share"] > 0.95
    assert table.loc[0, "top_k_variance_share"] < 0.5
    # Standardising removes the massive dimension's grip on the centre cosines.
    config = CategoricalConfig(n_permutations=20, n_bootstrap=20, standardise=True)
    res = categorical_indifference(acts, records, config)
    assert res["by_layer"]["standardised"].all()


def test_missing_prototypes_give_nan_foundation_and_one_warning():
    records = make_records(n_prototypes=8, prototypes={"cheating": 0}, seed=2)
    acts = make_activations(records, {0: "opposed", 1: "random"}, width=16, seed=2)
    with pytest.warns(UserWarning, match="cheating") as caught:
        res = categorical_indifference(
            acts, records, CategoricalConfig(n_permutations=20, n_bootstrap=20)
        )
    assert len([w for w in caught if "cheating" in str(w.message)]) == 1
    vv = res["virtue_vice"].set_index(["layer", "foundation"])
    assert vv.loc[(0, "fairness"), ["cosine", "null_low", "ci_low"]].isna().all()
    assert (vv.loc[0]["cosine"].drop("fairness") < -0.9).all()
    assert res.optimal_layers["synthetic"] == 0
    assert np.isfinite(res["summary"]["mean_virtue_vice_cosine"].iloc[0])


# ---------------------------------------------------------------- one result shape


def test_config_is_frozen_validated_and_parses_layers():
    config = CategoricalConfig(layers="0,-1")
    assert str(config.layers) == "0,-1"
    with pytest.raises(FrozenInstanceError):
        config.n_bootstrap = 5
    with pytest.raises(ValueError, match="n_permutations"):
        CategoricalConfig(n_permutations=0)
    with pytest.raises(ValueError, match="pooling"):
        CategoricalConfig(pooling="max")
    with pytest.raises(ValueError, match="layers"):
        CategoricalConfig(layers="1.5")


def test_negative_layers_resolve_against_the_model_depth(records):
    acts = make_activations(records, {0: "random", 5: "opposed"}, n_model_layers=6, width=16)
    res = categorical_indifference(acts, records, CategoricalConfig(layers=-1, n_bootstrap=5))
    assert res["by_layer"]["layer"].tolist() == [5]


def test_best_headline_and_claim(result):
    best = result.best()
    assert best["layer"].tolist() == [2]  # the lowest mean off-diagonal cosine
    head = result.headline().set_index("metric")
    assert list(result.headline().columns) == list(HEADLINE_COLUMNS)
    assert head.loc["virtue_vice_cosine", "layer"] == 2
    assert head.loc["virtue_vice_cosine", "value"] < -0.98
    assert head.loc["virtue_vice_cosine", "ci_low"] <= head.loc["virtue_vice_cosine", "ci_high"]
    (claim,) = result.claim()
    assert claim.claim_id == "categorical_indifference"
    assert claim.extra["inside_null_band"] is False  # layer 2 is planted far below the band
    assert claim.claim_id in load_claims()


def test_concat_keeps_each_models_optimal_layer(records):
    config = CategoricalConfig(n_permutations=10, n_bootstrap=10)
    a = make_activations(records, {0: "opposed", 1: "random"}, width=16, model_id="a", seed=1)
    b = make_activations(records, {0: "random", 1: "opposed"}, width=16, model_id="b", seed=1)
    both = CategoricalResult.concat([categorical_indifference(x, records, config) for x in (a, b)])
    assert both.optimal_layers == {"a": 0, "b": 1}
    assert both.best().set_index("model")["layer"].to_dict() == {"a": 0, "b": 1}
    assert set(both.at_optimal_layer()["model"]) == {"a", "b"}
    assert len(both.centre_cosines_at_optimal_layer("b")) == 100


def test_standardised_run_records_no_claim(records):
    acts = make_activations(records, {0: "random"}, width=16)
    config = CategoricalConfig(n_permutations=5, n_bootstrap=5, standardise=True)
    assert categorical_indifference(acts, records, config).claim() == []


def test_lower_tail_p_against_an_explicit_count():
    """One-sided p that the observed cosine lies below the null, with the +1 correction."""
    null = np.array([[-0.2], [-0.1], [0.0], [0.1], [0.2]])
    assert lower_tail_p(null, np.array([-0.2]))[0] == pytest.approx(2 / 6)
    assert lower_tail_p(null, np.array([-0.3]))[0] == pytest.approx(1 / 6)
    assert lower_tail_p(null, np.array([0.3]))[0] == pytest.approx(6 / 6)


def test_separation_is_one_sided_in_the_papers_direction(result):
    """Opposed poles (layer 2) are separated: positive separation, small one-sided p. Identical
    poles (layer 1, cosine above the band, the strongest indifference) give a negative
    separation and p near 1, never evidence against the claim."""
    by_layer = result["by_layer"].set_index("layer")
    opposed, identical = by_layer.loc[2], by_layer.loc[1]
    assert opposed["separation"] > 0.5 and opposed["p_separated"] < 0.01
    assert opposed["separation_ci_low"] <= opposed["separation_ci_high"]
    assert identical["separation"] < 0 and identical["p_separated"] > 0.9
    expected = opposed["null_centre"] - opposed["mean_virtue_vice_cosine"]
    assert opposed["separation"] == pytest.approx(expected)
    assert opposed["separation_ci_high"] == pytest.approx(
        opposed["null_centre"] - opposed["ci_low"]
    )


def test_claim_records_separation_interval_mde_and_control(records):
    acts = make_activations(records, {0: "none", 1: "shared"}, width=32, seed=3)
    config = CategoricalConfig(n_permutations=50, n_bootstrap=200)
    res = categorical_indifference(acts, records, config)
    power = planted_power("categorical", {"synthetic": acts}, records, res, config,
                          PowerConfig(n_draws=10))  # fmt: skip
    (plain,) = res.claim()
    assert plain.mde is None and plain.control is None
    (claim,) = res.claim(power=power)
    head = res["summary"].iloc[0]
    assert claim.value == pytest.approx(head["separation"], abs=1e-4)
    assert claim.extra["separation"] == claim.value
    assert claim.ci_low == pytest.approx(head["separation_ci_low"], abs=1e-4)
    assert claim.ci_high == pytest.approx(head["separation_ci_high"], abs=1e-4)
    assert claim.mde == pytest.approx(power.mde_row("synthetic")["mde"], abs=1e-4)
    assert "layer" in claim.mde_detail and claim.gates == ()
    assert res.verdict_layers() == {"synthetic": int(head["optimal_layer"])}
