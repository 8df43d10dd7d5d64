"""Structural indifference: do unsupervised clusters follow moral categories?

(paper §2.4; book: Methods › Structural, methods/structural.md)

Per layer the paper centres the mean-pooled activations over all records, keeps the principal
components that explain 95% of the variance (full SVD), clusters them with HDBSCAN
(``min_cluster_size=100``, ``min_samples=20``, Euclidean) and scores the clusters against three
human label sets: MFT5 (the record's foundation), Polarity3 (virtue / vice / neutral) and MFT15
(foundation x pole). Scores are computed on the non-noise points only, as the paper does; this
module adds two readings the paper lacks: noise counted as a cluster of its own, and the same
scores against permuted labels (a chance control, expected near 0).

HDBSCAN, its ``min_samples`` convention and the scaling rule for smaller samples live in
:mod:`moralkit.diagnostics.clustering`. UMAP (umap-learn) is used for 2-D pictures only,
never for a number.

**What the claim needs** (book: Methods › Power, controls and stability, methods/power.md). At
each model's best layer the ``verdict`` table adds a bootstrap interval of the ARI vs MFT15
(points resampled, clusters held fixed) and the clustering's **stability**: the ARI between
the clustering and those of ``stability_permutations`` row-permuted copies of the same points
(HDBSCAN breaks ties in row order). Below ``stability_level`` the clustering is unstable and
the claim's ``clustering_stable`` gate fails.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import (
    adjusted_rand_score,
    homogeneity_completeness_v_measure,
    normalized_mutual_info_score,
)
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.cluster_agreement import (
    ari_interval,
    ari_permutation_test,
    clustering_stability,
)
from moralkit.diagnostics.clustering import (
    PAPER_N_RECORDS,
    LayerClustering,
    StructuralConfig,
    cluster_layer,
    hdbscan_settings,
    scaled_hdbscan_params,
    sklearn_min_samples,
)
from moralkit.diagnostics.evidence import (
    VERDICT_TABLE_COLUMNS,
    Gate,
    VerdictLayers,
    build_evidence,
    claim_value,
    model_evidence,
)
from moralkit.diagnostics.inputs import (
    check_alignment,
    check_pooling,
    stored_layers,
)
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, ClaimValue

if TYPE_CHECKING:
    from moralkit.diagnostics.controls import ControlResult
    from moralkit.diagnostics.power import PowerResult

DEFAULT_CONFIG = StructuralConfig()
#: Re-exported from :mod:`moralkit.diagnostics.clustering`, where the clustering lives.
__all__ = [
    "LABEL_SETS", "METRICS", "PAPER_N_RECORDS", "SCORINGS", "LayerClustering",
    "StructuralConfig", "StructuralResult", "UmapConfig", "cluster_layer", "hdbscan_settings",
    "label_sets", "scaled_hdbscan_params", "score_clusters", "score_layer",
    "sklearn_min_samples", "stability_gate", "structural_indifference", "umap_embedding",
    "verdict_row",
]  # fmt: skip
#: The human label sets clusters are compared with (paper §2.4).
LABEL_SETS: tuple[str, ...] = ("MFT5", "Polarity3", "MFT15")
#: How the noise points (HDBSCAN label -1) enter the scores.
SCORINGS: tuple[str, ...] = ("non_noise", "noise_as_cluster", "permuted")
METRICS: tuple[str, ...] = ("ARI", "NMI", "homogeneity", "completeness", "v_measure")


def label_sets(records: MoralRecords) -> dict[str, np.ndarray]:
    """The three human labelings of the records: MFT5, Polarity3 and MFT15 (paper §2.4).

    MFT15 is foundation x pole, so neutral records of each foundation form their own group.
    """
    t = records.table
    foundation = t["foundation"].to_numpy(dtype=str)
    pole = t["pole"].to_numpy(dtype=str)
    return {
        "MFT5": foundation,
        "Polarity3": pole,
        "MFT15": np.char.add(np.char.add(foundation, ":"), pole),
    }


def score_clusters(truth: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """ARI, NMI, homogeneity, completeness and V-measure of ``clusters`` against ``truth``.

    All NaN when there are no points to score.
    """
    if len(truth) == 0:
        return dict.fromkeys(METRICS, float("nan"))
    h, c, v = homogeneity_completeness_v_measure(truth, clusters)
    return {
        "ARI": float(adjusted_rand_score(truth, clusters)),
        "NMI": float(normalized_mutual_info_score(truth, clusters)),
        "homogeneity": float(h),
        "completeness": float(c),
        "v_measure": float(v),
    }


def score_layer(
    clusters: np.ndarray,
    labels: dict[str, np.ndarray],
    n_permutations: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Long table (label_set, scoring, metric, value) for one layer's cluster labels.

    Scorings: ``non_noise`` (the paper: points labelled -1 dropped), ``noise_as_cluster`` (all
    points, noise one more cluster) and ``permuted`` (non-noise scoring against randomly
    permuted labels, mean over ``n_permutations``; a chance control, expected ~0 for ARI).
    """
    clusters = np.asarray(clusters)
    keep = clusters >= 0
    rng = np.random.default_rng(seed)
    rows = []
    for name, truth in labels.items():
        truth = np.asarray(truth)
        if truth.shape != clusters.shape:
            raise ValueError(f"{name} labels have shape {truth.shape}; expected {clusters.shape}")
        scored = {
            "non_noise": score_clusters(truth[keep], clusters[keep]),
            "noise_as_cluster": score_clusters(truth, clusters),
        }
        perms = [
            score_clusters(rng.permutation(truth)[keep], clusters[keep])
            for _ in range(max(1, n_permutations))
        ]
        scored["permuted"] = {m: float(np.mean([p[m] for p in perms])) for m in METRICS}
        for scoring, values in scored.items():
            for metric, value in values.items():
                rows.append((name, scoring, metric, value))
    return pd.DataFrame(rows, columns=["label_set", "scoring", "metric", "value"])


@dataclass
class StructuralResult(VerdictLayers, AnalysisResult):
    """Clustering diagnostic for one or more models (paper §2.4).

    - ``scores`` (long form): model, layer, relative_depth, n_clusters, noise_ratio,
      n_components, min_cluster_size, min_samples, label_set, scoring, metric, value.
    - ``layers``: one row per model x layer: cluster count, noise ratio, PCA size and the
      HDBSCAN settings used (``min_samples`` in the paper's convention).
    - ``verdict``: one row per model at its best layer: ``ari`` vs MFT15 (non-noise) with its
      bootstrap ``ci_low`` / ``ci_high`` (clusters held fixed), ``p_permutation`` (label
      shuffles), and ``stability_min`` / ``stability_mean`` over ``n_stability`` row-permuted
      re-clusterings, ``stable`` (min >= ``stability_level``).

    ``best()`` is each model's layer with the highest non-noise ARI against MFT15.
    """

    TABLES = ("scores", "layers", "verdict")
    BEST_TABLE = "scores"
    BEST_COLUMN = "value"
    BEST_WHERE = {"metric": "ARI", "label_set": "MFT15", "scoring": "non_noise"}

    def metric(
        self, metric: str = "ARI", label_set: str = "MFT15", scoring: str = "non_noise"
    ) -> pd.DataFrame:
        """The rows of one metric / label set / scoring, one per (model, layer)."""
        t = self.tables["scores"]
        sel = t[(t["metric"] == metric) & (t["label_set"] == label_set) & (t["scoring"] == scoring)]
        return sel.reset_index(drop=True)

    def at_best_layer(self) -> pd.DataFrame:
        """All scores at each model's best layer."""
        return self.tables["scores"].merge(self.best()[["model", "layer"]], on=["model", "layer"])

    def best_layer_scores(self) -> pd.DataFrame:
        """The five scores (columns) per model, label set and scoring at the best layer."""
        return self.at_best_layer().pivot_table(
            index=["model", "layer", "label_set", "scoring"], columns="metric", values="value"
        )

    def headline(self) -> pd.DataFrame:
        """ARI against MFT15 (non-noise points, with its interval) and the noise ratio at each
        model's best layer."""
        best = self.best().merge(
            self.tables["verdict"][["model", "ci_low", "ci_high"]], on="model", how="left"
        )
        base = {"model": best["model"], "diagnostic": "structural", "layer": best["layer"]}
        base["relative_depth"] = best["relative_depth"]
        ari = pd.DataFrame({**base, "metric": "ari_mft15", "value": best["value"]})
        ari["ci_low"], ari["ci_high"] = best["ci_low"], best["ci_high"]
        noise = pd.DataFrame({**base, "metric": "noise_ratio", "value": best["noise_ratio"]})
        noise["ci_low"] = noise["ci_high"] = np.nan
        return pd.concat([ari, noise], ignore_index=True)[list(HEADLINE_COLUMNS)]

    def verdict_table(self) -> pd.DataFrame:
        """Per model, the claim's effect at its best layer: ARI vs MFT15 and its interval."""
        t = self.tables["verdict"].rename(columns={"ari": "value"}).assign(metric="ARI vs MFT15")
        return t[list(VERDICT_TABLE_COLUMNS)].reset_index(drop=True)

    def claim(
        self, power: PowerResult | None = None, control: ControlResult | None = None
    ) -> list[ClaimValue]:
        """``structural_indifference``: the highest best-layer ARI vs MFT15 over models, with
        its interval, the ``clustering_stable`` gate of every model's best layer, and the MDE
        of ``power`` and the positive ``control`` at the headline model and layer."""
        verdict = self.tables["verdict"].dropna(subset=["ari"])
        if verdict.empty:
            return []
        top = verdict.loc[verdict["ari"].idxmax()]
        gate = stability_gate(verdict, self.config)
        per_model = {}
        for r in verdict.itertuples():
            ev = build_evidence((r.ci_low, r.ci_high), str(r.model), "structural", power, control)
            per_model[str(r.model)] = {
                "best_layer": int(r.layer), "ari_mft15": round(float(r.ari), 4),
                "stability_min": round(float(r.stability_min), 4), **model_evidence(ev),
            }  # fmt: skip
        evidence = build_evidence(
            (top["ci_low"], top["ci_high"]), str(top["model"]), "structural", power, control,
            gates=[gate],
        )  # fmt: skip
        chance = self.metric("ARI", "MFT15", "permuted")["value"]
        note = (
            f"highest best-layer ARI vs MFT15 over models ({top['model']}, layer "
            f"{int(top['layer'])}; non-noise points) [{top['ci_low']:.3f}, {top['ci_high']:.3f}]"
            f"; permuted-label ARI spans [{chance.min():.3f}, {chance.max():.3f}]; {gate.detail}"
        )
        extra = {"per_model": per_model, "headline_model": str(top["model"])}
        value = round(float(top["ari"]), 4)
        return [claim_value("structural_indifference", value, note, extra, evidence)]


def stability_gate(verdict: pd.DataFrame, config: StructuralConfig | None) -> Gate:
    """``clustering_stable``: every model's best-layer clustering agrees with its row-permuted
    re-clusterings at ARI >= ``stability_level`` (unchecked counts as failed)."""
    level = (config or StructuralConfig()).stability_level
    shown = "; ".join(
        f"{r.model} layer {int(r.layer)}: min ARI {r.stability_min:.2f} over "
        f"{int(r.n_stability)} row orders"
        for r in verdict.itertuples()
    )
    passed = bool((verdict["n_stability"] > 0).all() and (verdict["stability_min"] >= level).all())
    word = "stable" if passed else "unstable (or unchecked)"
    return Gate(
        "clustering_stable", passed, f"clustering {word} under row order (>= {level}): {shown}"
    )


_LAYER_COLUMNS = (
    "model",
    "layer",
    "relative_depth",
    "n_clusters",
    "noise_ratio",
    "n_components",
    "min_cluster_size",
    "min_samples",
)


def structural_indifference(
    acts: ActivationSet,
    records: MoralRecords,
    config: StructuralConfig = DEFAULT_CONFIG,
    progress: bool = False,
) -> StructuralResult:
    """Per-layer HDBSCAN clustering scored against MFT5, Polarity3 and MFT15 (paper §2.4;
    book: Methods › Structural, methods/structural.md)."""
    check_alignment(acts, records)
    check_pooling(acts, config.pooling)
    labels = label_sets(records)
    frames, clusters = [], {}
    chosen = stored_layers(acts, config.layers)
    for layer in tqdm(chosen, desc=f"clustering {acts.model_id}", disable=not progress):
        fit = cluster_layer(acts.get(layer, config.pooling), config)
        clusters[layer] = fit.labels
        scores = score_layer(fit.labels, labels, config.n_permutations, seed=config.seed + layer)
        scores.insert(0, "min_samples", fit.min_samples)
        scores.insert(0, "min_cluster_size", fit.min_cluster_size)
        scores.insert(0, "n_components", fit.n_components)
        scores.insert(0, "noise_ratio", fit.noise_ratio)
        scores.insert(0, "n_clusters", fit.n_clusters)
        scores.insert(0, "relative_depth", acts.relative_depth(layer))
        scores.insert(0, "layer", layer)
        scores.insert(0, "model", acts.model_id)
        frames.append(scores)
    table = pd.concat(frames, ignore_index=True)
    layer_table = table[list(_LAYER_COLUMNS)].drop_duplicates().reset_index(drop=True)
    tables = {"scores": table, "layers": layer_table, "verdict": pd.DataFrame()}
    best = StructuralResult(tables, config).best()
    rows = [
        verdict_row(acts, labels["MFT15"], clusters[int(r.layer)], int(r.layer), config)
        for r in best.itertuples()
    ]
    tables["verdict"] = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    return StructuralResult(tables, config)


VERDICT_COLUMNS: tuple[str, ...] = (
    "model", "layer", "ari", "ci_low", "ci_high", "n_bootstrap", "p_permutation", "n_clusters",
    "noise_ratio", "stability_min", "stability_mean", "n_stability", "stable",
)  # fmt: skip
#: label shuffles behind the best layer's permutation p-value
N_LABEL_PERMUTATIONS = 999


def verdict_row(
    acts: ActivationSet,
    truth: np.ndarray,
    clusters: np.ndarray,
    layer: int,
    config: StructuralConfig,
) -> dict:
    """The ``verdict`` row of one model's best layer: ARI vs ``truth`` on non-noise points with
    its interval and permutation p, and the clustering's stability under row order."""
    rng = np.random.default_rng(config.seed + layer)
    keep = clusters >= 0
    ari, p = ari_permutation_test(truth[keep], clusters[keep], N_LABEL_PERMUTATIONS, rng)
    low, high = ari_interval(truth[keep], clusters[keep], config.n_bootstrap, rng)
    stability = clustering_stability(
        acts.get(layer, config.pooling),
        lambda X: cluster_layer(X, config).labels,
        config.stability_permutations,
        seed=config.seed + layer,
        reference=clusters,
    )
    has = stability.size > 0
    return {
        "model": acts.model_id, "layer": layer, "ari": ari, "ci_low": low, "ci_high": high,
        "n_bootstrap": config.n_bootstrap, "p_permutation": p,
        "n_clusters": int(np.unique(clusters[keep]).size), "noise_ratio": float(np.mean(~keep)),
        "stability_min": float(stability.min()) if has else np.nan,
        "stability_mean": float(stability.mean()) if has else np.nan,
        "n_stability": int(stability.size),
        "stable": bool(has and stability.min() >= config.stability_level),
    }  # fmt: skip


@dataclass(frozen=True)
class UmapConfig:
    """The paper's UMAP settings for its pictures (paper §2.4)."""

    n_neighbors: int = 15
    min_dist: float = 0.1
    random_state: int = 42


def umap_embedding(
    acts: ActivationSet,
    records: MoralRecords,
    layer: int,
    config: StructuralConfig = DEFAULT_CONFIG,
    umap_config: UmapConfig = UmapConfig(),
) -> pd.DataFrame:
    """2-D UMAP of one layer's PCA-reduced points, for pictures only (paper §2.4).

    The map is computed from the same centred, PCA-reduced points HDBSCAN sees, and carries the
    HDBSCAN cluster of each record (-1 = noise). Returns columns model, layer, x, y, foundation,
    pole, category, cluster. umap-learn compiles with numba on first use (tens of seconds).
    """
    import umap  # heavy import (numba); only needed for this picture

    check_alignment(acts, records)
    (layer,) = stored_layers(acts, [layer], name="layer")
    fit = cluster_layer(acts.get(layer, config.pooling), config)
    mapper = umap.UMAP(
        n_neighbors=umap_config.n_neighbors,
        min_dist=umap_config.min_dist,
        random_state=umap_config.random_state,
        n_components=2,
    )
    with warnings.catch_warnings():
        # A fixed random_state makes umap-learn single-threaded and say so; that is intended.
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        xy = mapper.fit_transform(fit.reduced)
    t = records.table
    return pd.DataFrame(
        {
            "model": acts.model_id,
            "layer": layer,
            "x": xy[:, 0],
            "y": xy[:, 1],
            "foundation": t["foundation"].to_numpy(dtype=str),
            "pole": t["pole"].to_numpy(dtype=str),
            "category": t["category"].to_numpy(dtype=str),
            "cluster": fit.labels,
        }
    )
