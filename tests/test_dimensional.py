"""Tests for the linear-probe diagnostic (paper-methods §2.5) on planted linear maps."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_records

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.dimensional import (
    CONSTANT_TARGET_NOTE,
    ProbeConfig,
    dimensional_indifference,
    paper_split,
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
    return dimensional_indifference(planted, records, progress=False)


def overall(result, layer, probe, control="none") -> float:
    t = result.table
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
    per_dim = result.table[
        (result.table["layer"] == 0)
        & (result.table["probe"] == probe)
        & (result.table["control"] == "none")
        & (result.table["dimension"] != "overall")
    ]
    assert set(per_dim["dimension"]) == set(DIMENSIONS)
    assert (per_dim["r2"] > 0.9).all()


@pytest.mark.parametrize("probe", ["paper", "ridge_cv"])
def test_shuffled_targets_and_unrelated_layer_give_no_fit(result, probe):
    assert overall(result, 0, probe, "shuffled") < 0.05
    assert overall(result, 1, probe) < 0.05


def test_best_layer_and_at_best_layer(result):
    best = result.best
    assert set(best["probe"]) == {"paper", "ridge_cv"}
    assert (best["layer"] == 0).all()
    assert (best["weights"] == "trained").all()
    at_best = result.at_best_layer()
    assert len(at_best) == 2 * len(DIMENSIONS)
    assert (at_best["layer"] == 0).all()


def test_table_columns_and_relative_depth(result):
    t = result.table
    for col in ("model", "layer", "relative_depth", "probe", "control", "dimension", "r2"):
        assert col in t.columns
    assert set(t["control"]) == {"none", "shuffled"}
    assert set(t.loc[t["layer"] == 0, "relative_depth"]) == {0.25}
    paper = result.training[result.training["probe"] == "paper"]
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
    res = dimensional_indifference(acts, virtue_only, probes=("ridge_cv",), progress=False)
    t = res.table[res.table["control"] == "none"].set_index("dimension")
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
    kwargs = dict(layers=[0], probes=("paper",), controls=(), seed=7, progress=False)
    a = dimensional_indifference(planted, records, **kwargs).table
    b = dimensional_indifference(planted, records, **kwargs).table
    assert np.array_equal(a["r2"].to_numpy(), b["r2"].to_numpy())


def test_untrained_twin_rows_are_marked(planted, records):
    twin = ActivationSet(planted.arrays, planted.layers, 4, "toy", {"random_init": True})
    res = dimensional_indifference(
        twin, records, layers=[1], probes=("ridge_cv",), controls=(), progress=False
    )
    assert set(res.table["weights"]) == {"untrained"}


def test_bad_arguments_raise(planted, records):
    with pytest.raises(ValueError, match="unknown probes"):
        dimensional_indifference(planted, records, probes=("mlp",))
    with pytest.raises(ValueError, match="unknown controls"):
        dimensional_indifference(planted, records, controls=("random",))
    with pytest.raises(ValueError, match="aligned"):
        dimensional_indifference(planted, records.where(np.arange(len(records)) > 0))
    with pytest.raises(ValueError, match="split fractions"):
        paper_split(100, ProbeConfig(test_size=0.5, val_size=0.6))


def test_figures_draw_from_the_tables(result):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from moralkit.figures.dimensional import plot_dimension_heatmap, plot_r2_by_depth

    assert isinstance(plot_r2_by_depth(result.table), Figure)
    assert isinstance(plot_dimension_heatmap(result.at_best_layer()), Figure)


def test_controls_can_be_limited_to_some_layers(planted, records):
    res = dimensional_indifference(
        planted, records, probes=("ridge_cv",), control_layers=[1], progress=False
    )
    shuffled = res.table[res.table["control"] == "shuffled"]
    assert set(shuffled["layer"]) == {1}
    assert set(res.table.loc[res.table["control"] == "none", "layer"]) == {0, 1}
    with pytest.raises(ValueError, match="control_layers"):
        dimensional_indifference(planted, records, layers=[0], control_layers=[1])
