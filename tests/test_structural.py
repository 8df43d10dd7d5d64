"""Tests for the clustering diagnostic (paper §2.4) on planted structure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from synthetic import make_records

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.structural import (
    METRICS,
    LayerClustering,
    StructuralConfig,
    StructuralResult,
    cluster_layer,
    label_sets,
    scaled_hdbscan_params,
    score_layer,
    structural_indifference,
    umap_embedding,
)


@pytest.fixture(scope="module")
def records():
    # 15 MFT15 groups (5 foundations x virtue/vice/neutral) of 84 records each.
    return make_records(n_per_stratum=12, n_prototypes=24, n_neutral=84, seed=0)


def mft15_codes(records) -> np.ndarray:
    _, codes = np.unique(label_sets(records)["MFT15"], return_inverse=True)
    return codes


@pytest.fixture(scope="module")
def planted(records):
    """Layer 0: one tight, far-apart Gaussian blob per MFT15 group; layer 1: isotropic noise."""
    rng = np.random.default_rng(1)
    n, width = len(records), 24
    centres = rng.normal(size=(15, width)) * 10.0
    blobs = centres[mft15_codes(records)] + rng.normal(size=(n, width)) + 40.0
    noise = rng.normal(size=(n, width))
    return ActivationSet.from_arrays({0: blobs, 1: noise}, n_model_layers=2, model_id="toy")


@pytest.fixture(scope="module")
def result(planted, records):
    return structural_indifference(planted, records)


def value(result, layer, label_set, scoring, metric="ARI") -> float:
    t = result.metric(metric, label_set, scoring)
    return float(t.loc[t["layer"] == layer, "value"].iloc[0])


def test_separated_categories_recovered(result):
    layer0 = result["layers"].set_index("layer").loc[0]
    assert layer0["n_clusters"] == 15
    assert layer0["noise_ratio"] < 0.1
    assert value(result, 0, "MFT15", "non_noise") > 0.95
    assert value(result, 0, "MFT15", "non_noise", "v_measure") > 0.95
    # Clusters that are MFT15 groups only partly agree with the coarser label sets.
    assert value(result, 0, "MFT5", "non_noise") < 0.8
    assert value(result, 0, "Polarity3", "non_noise") < 0.8


def test_permuted_labels_score_near_zero(result):
    for layer in (0, 1):
        for label_set in ("MFT5", "Polarity3", "MFT15"):
            assert abs(value(result, layer, label_set, "permuted")) < 0.05


def test_random_data_does_not_match_labels(result):
    ari = value(result, 1, "MFT15", "noise_as_cluster")
    assert abs(ari) < 0.05
    non_noise = value(result, 1, "MFT15", "non_noise")
    assert np.isnan(non_noise) or abs(non_noise) < 0.1


def test_best_layer_is_the_structured_one(result):
    best = result.best()
    assert list(best["model"]) == ["toy"]
    assert int(best["layer"].iloc[0]) == 0


def test_table_is_tidy_and_complete(result):
    t = result["scores"]
    for col in ("model", "layer", "relative_depth", "n_clusters", "noise_ratio"):
        assert col in t.columns
    assert set(t["scoring"]) == {"non_noise", "noise_as_cluster", "permuted"}
    assert set(t["metric"]) == set(METRICS)
    # 2 layers x 3 label sets x 3 scorings x 5 metrics
    assert len(t) == 2 * 3 * 3 * 5
    assert set(t["relative_depth"]) == {0.5, 1.0}


def test_noise_as_cluster_differs_from_non_noise_when_noise_exists():
    truth = np.repeat(np.arange(4), 50)
    clusters = truth.copy()
    clusters[::5] = -1  # 20% noise spread over every group
    scores = score_layer(clusters, {"MFT15": truth}, n_permutations=3, seed=0)
    by = scores.set_index(["scoring", "metric"])["value"]
    assert by["non_noise", "ARI"] == pytest.approx(1.0)
    assert by["noise_as_cluster", "ARI"] < 0.9
    assert by["noise_as_cluster", "completeness"] < by["non_noise", "completeness"]
    assert abs(by["permuted", "ARI"]) < 0.1


def test_all_noise_gives_nan_not_crash():
    truth = np.repeat(np.arange(3), 10)
    scores = score_layer(np.full(30, -1), {"MFT5": truth}, n_permutations=2)
    non_noise = scores[scores["scoring"] == "non_noise"]["value"]
    assert non_noise.isna().all()


@pytest.mark.parametrize(
    ("n", "expected"),
    [(16315, (100, 20)), (8158, (50, 10)), (1632, (10, 2)), (100, (5, 2)), (50000, (100, 20))],
)
def test_min_cluster_size_scaling_rule(n, expected):
    assert scaled_hdbscan_params(n) == expected


def test_scaling_can_be_switched_off():
    cfg = StructuralConfig(min_cluster_size=40, min_samples=7, scale_with_n=False)
    assert scaled_hdbscan_params(500, cfg) == (40, 7)
    cfg = StructuralConfig(min_cluster_size=40, min_samples=10)
    assert scaled_hdbscan_params(16315 // 2, cfg) == (20, 5)


def test_result_records_the_settings_used(result, records):
    layers = result["layers"]
    assert (layers["min_cluster_size"] == scaled_hdbscan_params(len(records))[0]).all()
    assert (layers["n_components"] >= 1).all()


def test_misaligned_rows_and_missing_layers_raise(planted, records):
    with pytest.raises(ValueError, match="aligned"):
        structural_indifference(planted, records.where(np.arange(len(records)) > 0))
    with pytest.raises(ValueError, match="layers"):
        structural_indifference(planted, records, StructuralConfig(layers=[1, 5]))
    with pytest.raises(ValueError, match="pooling"):
        structural_indifference(planted, records, StructuralConfig(pooling="last"))


def test_label_sets_have_paper_sizes(records):
    sets = label_sets(records)
    assert len(set(sets["MFT5"])) == 5
    assert len(set(sets["Polarity3"])) == 3
    assert len(set(sets["MFT15"])) == 15


@pytest.mark.slow
def test_umap_embedding_shape_and_columns(planted, records):
    emb = umap_embedding(planted, records, layer=0)
    assert isinstance(emb, pd.DataFrame)
    assert len(emb) == len(records)
    for col in ("x", "y", "foundation", "pole", "category", "cluster"):
        assert col in emb.columns
    assert np.isfinite(emb[["x", "y"]].to_numpy()).all()
    assert emb["cluster"].nunique() >= 15


def test_figures_draw_from_the_tables(result, records):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from moralkit.figures.structural import plot_structure_by_depth, plot_umap

    assert isinstance(plot_structure_by_depth(result["scores"]), Figure)
    rng = np.random.default_rng(0)
    fake = pd.DataFrame(
        {
            "x": rng.normal(size=len(records)),
            "y": rng.normal(size=len(records)),
            "category": records.table["category"].to_numpy(dtype=str),
            "cluster": rng.integers(-1, 4, len(records)),
        }
    )
    assert isinstance(plot_umap(fake, title="toy"), Figure)


# ---------------------------------------------------------------- fidelity to the official code


@pytest.fixture(scope="module")
def uneven_blobs() -> np.ndarray:
    """Blobs of different density plus scattered points: HDBSCAN's partition of these changes
    with min_samples (checked below), so an off-by-one in min_samples shows."""
    rng = np.random.default_rng(0)
    return np.concatenate(
        [
            rng.normal(0, 0.5, (40, 2)),
            rng.normal(4, 1.0, (40, 2)),
            rng.normal([0, 5], 1.5, (40, 2)),
            rng.uniform(-4, 8, (30, 2)),
        ]
    )


@pytest.mark.parametrize("min_samples", [3, 5, 8])
def test_min_samples_follows_the_hdbscan_package(uneven_blobs, min_samples):
    """The paper's code uses the hdbscan package, whose min_samples excludes the point itself;
    cluster_layer must give the package's partition for the same min_samples."""
    hdbscan = pytest.importorskip("hdbscan")
    from sklearn.cluster import HDBSCAN
    from sklearn.metrics import adjusted_rand_score

    config = StructuralConfig(min_cluster_size=10, min_samples=min_samples, scale_with_n=False)
    fit = cluster_layer(uneven_blobs, config)
    assert fit.n_components == 2  # PCA only rotates: the same Euclidean distances
    # the package's exact tree, like moralkit's; its default (algorithm="best", an approximate
    # Borůvka tree) differs at some settings: a departure the chapter lists
    official = hdbscan.HDBSCAN(
        min_cluster_size=10,
        min_samples=min_samples,
        algorithm="generic",
        approx_min_span_tree=False,
    ).fit_predict(fit.reduced)
    assert adjusted_rand_score(official, fit.labels) == pytest.approx(1.0)
    assert np.array_equal(official == -1, fit.labels == -1)
    assert fit.min_samples == min_samples  # reported in the paper's convention
    # Passing the paper's value to scikit-learn unchanged gives another partition here.
    naive = HDBSCAN(min_cluster_size=10, min_samples=min_samples).fit_predict(fit.reduced)
    assert adjusted_rand_score(official, naive) < 0.99


def test_clustering_depends_on_min_samples(uneven_blobs):
    fits = [
        cluster_layer(
            uneven_blobs,
            StructuralConfig(min_cluster_size=10, min_samples=ms, scale_with_n=False),
        ).labels
        for ms in (2, 3)
    ]
    assert not np.array_equal(fits[0], fits[1])


def test_best_headline_claim_and_concat(result, planted, records):
    head = result.headline().set_index("metric")
    assert set(head.index) == {"ari_mft15", "noise_ratio"}
    assert head.loc["ari_mft15", "layer"] == 0 and head.loc["ari_mft15", "value"] > 0.95
    (claim,) = result.claim()
    assert claim.claim_id == "structural_indifference"
    assert claim.value == pytest.approx(head.loc["ari_mft15", "value"], abs=1e-4)
    assert claim.ci_low <= claim.value <= claim.ci_high
    (gate,) = claim.gates
    assert gate.name == "clustering_stable" and gate.passed  # far-apart blobs
    other = structural_indifference(
        dataclasses.replace(planted, model_id="other"), records, StructuralConfig(layers=[1])
    )
    both = StructuralResult.concat([result, other])
    assert both.best().set_index("model")["layer"].to_dict() == {"toy": 0, "other": 1}
    assert len(both["layers"]) == 3
    assert set(both.at_best_layer()["model"]) == {"toy", "other"}


def test_an_order_dependent_clustering_fails_the_stability_gate(planted, records, monkeypatch):
    """A clustering that changes with row order alone is not a result: the gate fails."""
    from moralkit.diagnostics import structural

    def by_position(X, config):  # labels depend on row position only
        labels = (np.arange(len(X)) * 7 // len(X)).astype(int)
        return LayerClustering(np.asarray(X), labels, 1, 5, 2)

    monkeypatch.setattr(structural, "cluster_layer", by_position)
    res = structural_indifference(planted, records, StructuralConfig(layers=[1]))
    row = res["verdict"].iloc[0]
    assert row["n_stability"] == 3 and row["stability_min"] < 0.1 and not row["stable"]
    (claim,) = res.claim()
    assert claim.gates[0].passed is False
    assert "unstable" in claim.gates[0].detail


def test_verdict_table_interval_and_permutation_p(result):
    verdict = result["verdict"].iloc[0]
    assert verdict["layer"] == 0 and verdict["p_permutation"] == pytest.approx(1 / 1000)
    assert verdict["ci_low"] <= verdict["ari"] <= verdict["ci_high"]
    table = result.verdict_table()
    assert table["value"].iloc[0] == verdict["ari"] and result.verdict_layers() == {"toy": 0}
