"""Tests for the linear-probe diagnostic (paper §2.5) on planted linear maps."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_records

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.dimensional import (
    CONSTANT_TARGET_NOTE,
    DimensionalConfig,
    DimensionalResult,
    dimensional_indifference,
    fit_paper_probe,
    paper_split,
    probed_layers,
    r2_by_dimension,
)
from moralkit.foundations import DIMENSIONS


@pytest.fixture(scope="module")
def records():
    # 10 categories x (5 x 48 + 60) polar records + 5 x 60 neutral = 3300 records.
    return make_records(n_per_stratum=48, n_prototypes=60, n_neutral=60, seed=0)


@pytest.fixture(scope="module")
def planted(records):
    """Layer 0: X = Y W + small noise (64 dims > 10); layer 1: noise unrelated to Y."""
    rng = np.random.default_rng(3)
    Y = records.vectors
    W = rng.normal(size=(Y.shape[1], 64))
    signal = Y @ W + 0.05 * rng.normal(size=(len(Y), 64))
    noise = rng.normal(size=(len(Y), 64))
    return ActivationSet.from_arrays({0: signal, 1: noise}, n_model_layers=4, model_id="toy")


@pytest.fixture(scope="module")
def result(planted, records):
    return dimensional_indifference(planted, records)


def overall(result, layer, probe, control="none") -> float:
    t = result["r2"]
    sel = t[
        (t["layer"] == layer)
        & (t["probe"] == probe)
        & (t["control"] == control)
        & (t["dimension"] == "overall")
    ]
    assert len(sel) == 1
    return float(sel["r2"].iloc[0])


@pytest.mark.parametrize("probe", ["paper", "ridge_cv"])
def test_planted_linear_map_is_recovered(result, probe):
    assert overall(result, 0, probe) > 0.95
    per_dim = result["r2"][
        (result["r2"]["layer"] == 0)
        & (result["r2"]["probe"] == probe)
        & (result["r2"]["control"] == "none")
        & (result["r2"]["dimension"] != "overall")
    ]
    assert set(per_dim["dimension"]) == set(DIMENSIONS)
    assert (per_dim["r2"] > 0.9).all()


@pytest.mark.parametrize("probe", ["paper", "ridge_cv"])
def test_shuffled_targets_and_unrelated_layer_give_no_fit(result, probe):
    assert overall(result, 0, probe, "shuffled") < 0.05
    assert overall(result, 1, probe) < 0.05


def test_best_layer_and_at_best_layer(result):
    best = result.best()
    assert set(best["probe"]) == {"paper", "ridge_cv"}
    assert (best["layer"] == 0).all()
    assert (best["weights"] == "trained").all()
    at_best = result.at_best_layer()
    assert len(at_best) == 2 * len(DIMENSIONS)
    assert (at_best["layer"] == 0).all()


def test_table_columns_and_relative_depth(result):
    t = result["r2"]
    for col in ("model", "layer", "relative_depth", "probe", "control", "dimension", "r2"):
        assert col in t.columns
    assert set(t["control"]) == {"none", "shuffled"}
    assert set(t.loc[t["layer"] == 0, "relative_depth"]) == {0.25}
    paper = result["training"][result["training"]["probe"] == "paper"]
    assert (paper["epochs"].between(1, 100)).all()


def test_paper_split_is_70_10_20_and_disjoint():
    for n in (1000, 16315, 2937):
        train, val, test = paper_split(n)
        assert abs(len(test) - 0.2 * n) <= 1
        assert abs(len(val) - 0.1 * n) <= 1
        assert abs(len(train) - 0.7 * n) <= 2
        together = np.concatenate([train, val, test])
        assert len(np.unique(together)) == n
    # The split is fixed by random_state=42, whatever the probe seed.
    a, b = paper_split(500), paper_split(500)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_constant_target_dimension_gives_nan_not_crash(records):
    # No vice records: the five vice dimensions are all-zero targets.
    virtue_only = records.where(records.table["pole"] != "vice")
    rng = np.random.default_rng(0)
    X = virtue_only.vectors @ rng.normal(size=(10, 32)) + 0.05 * rng.normal(
        size=(len(virtue_only), 32)
    )
    acts = ActivationSet.from_arrays({0: X}, n_model_layers=1)
    res = dimensional_indifference(acts, virtue_only, DimensionalConfig(probes=("ridge_cv",)))
    t = res["r2"][res["r2"]["control"] == "none"].set_index("dimension")
    for vice in DIMENSIONS[1::2]:
        assert np.isnan(t.loc[vice, "r2"])
        assert t.loc[vice, "note"] == CONSTANT_TARGET_NOTE
    assert t.loc["overall", "r2"] > 0.9
    assert "undefined" in t.loc["overall", "note"]


def test_r2_by_dimension_matches_sklearn_when_defined():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(1)
    y = rng.normal(size=(50, 3))
    pred = y + rng.normal(size=(50, 3))
    total, per_dim = r2_by_dimension(y, pred)
    assert total == pytest.approx(r2_score(y, pred))
    assert per_dim == pytest.approx(r2_score(y, pred, multioutput="raw_values"))


def test_paper_probe_is_deterministic(planted, records):
    config = DimensionalConfig(layers=[0], probes=("paper",), controls=(), seed=7)
    a = dimensional_indifference(planted, records, config)["r2"]
    b = dimensional_indifference(planted, records, config)["r2"]
    assert np.array_equal(a["r2"].to_numpy(), b["r2"].to_numpy())


def test_untrained_twin_rows_are_marked(planted, records):
    twin = ActivationSet(planted.arrays, planted.layers, 4, "toy", {"random_init": True})
    # the shuffled control runs on trained weights only
    res = dimensional_indifference(twin, records, DimensionalConfig(layers=[1], probes="ridge_cv"))
    assert set(res["r2"]["weights"]) == {"untrained"}
    assert set(res["r2"]["control"]) == {"none"}
    assert res.headline()["metric"].tolist() == ["r2_ridge_cv_untrained"]
    assert res.claim() == []  # the claims are about trained models


def test_bad_arguments_raise(planted, records):
    with pytest.raises(ValueError, match="probes: unknown"):
        DimensionalConfig(probes=("mlp",))
    with pytest.raises(ValueError, match="controls: unknown"):
        DimensionalConfig(controls=("random",))
    with pytest.raises(ValueError, match="probe_layers"):
        DimensionalConfig(probe_layers="every:x")
    with pytest.raises(ValueError, match="aligned"):
        dimensional_indifference(planted, records.where(np.arange(len(records)) > 0))
    with pytest.raises(ValueError, match="split fractions"):
        paper_split(100, DimensionalConfig(test_size=0.5, val_size=0.6))


def test_figures_draw_from_the_tables(result):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from moralkit.figures.dimensional import plot_dimension_heatmap, plot_r2_by_depth

    assert isinstance(plot_r2_by_depth(result["r2"]), Figure)
    assert isinstance(plot_dimension_heatmap(result.at_best_layer()), Figure)


def test_controls_can_be_limited_to_some_layers(planted, records):
    config = DimensionalConfig(probes=("ridge_cv",), control_layers=[1])
    res = dimensional_indifference(planted, records, config)
    shuffled = res["r2"][res["r2"]["control"] == "shuffled"]
    assert set(shuffled["layer"]) == {1}
    assert set(res["r2"].loc[res["r2"]["control"] == "none", "layer"]) == {0, 1}
    # control layers outside the probed ones: the controls run at every probed layer
    config = DimensionalConfig(layers=[0], probes=("ridge_cv",), control_layers=[1])
    res = dimensional_indifference(planted, records, config)
    assert set(res["r2"].loc[res["r2"]["control"] == "shuffled", "layer"]) == {0}
    with pytest.raises(ValueError, match="control_layers"):
        dimensional_indifference(planted, records, DimensionalConfig(control_layers=[9]))


def test_probe_layers_narrow_the_analysed_layers(planted, records):
    config = DimensionalConfig(probes="ridge_cv", controls=(), probe_layers="every:3")
    # 4-layer model: every:3 is 0 and 3; only 0 is stored among them
    assert probed_layers(planted, config) == [0]
    res = dimensional_indifference(planted, records, config)
    assert set(res["r2"]["layer"]) == {0}
    # no layer in common: every analysed layer is probed
    assert probed_layers(planted, DimensionalConfig(probe_layers="2")) == [0, 1]


def test_paper_probe_restores_its_best_epoch_not_its_last():
    """The paper describes restoring the best validation state; the official script's shallow
    state_dict().copy() restores the last epoch. moralkit restores the best."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 80)) * 30.0  # wide, large inputs: overfits within epochs
    Y = rng.uniform(size=(300, 10))
    config = DimensionalConfig(learning_rate=0.05, max_epochs=40, probe_batch_size=16)
    fit = fit_paper_probe(X, Y, config, seed=0)
    assert fit.epochs > config.early_stopping_patience  # it trained past its best epoch
    assert fit.restored_val_mse == pytest.approx(fit.best_val_mse, rel=1e-6)


def test_best_headline_claim_and_concat(result, planted, records):
    head = result.headline().set_index("metric")
    assert set(head.index) == {"r2_paper", "r2_ridge_cv"}
    assert (head["layer"] == 0).all() and (head["value"] > 0.95).all()
    claims = {c.claim_id: c for c in result.claim()}
    assert set(claims) == {"best_probe_r2", "dimensional_indifference"}
    # the paper's number is its own probe's: best_probe_r2 reads the paper probe only
    assert claims["best_probe_r2"].value == pytest.approx(head.loc["r2_paper", "value"], abs=1e-4)
    top = claims["dimensional_indifference"]
    assert top.value == pytest.approx(head["value"].max(), abs=1e-4)
    for claim in claims.values():  # the interval of the judged value, around it
        assert claim.ci_low <= claim.value <= claim.ci_high
    assert set(claims["best_probe_r2"].extra["per_probe"]) == {"paper", "ridge_cv"}
    twin = ActivationSet(planted.arrays, planted.layers, 4, "toy", {"random_init": True})
    config = DimensionalConfig(layers=[1], probes="ridge_cv")
    both = DimensionalResult.concat([result, dimensional_indifference(twin, records, config)])
    assert set(both["training"]["weights"]) == {"trained", "untrained"}
    assert len(both.best()) == 3  # paper + ridge (trained), ridge (untrained)
