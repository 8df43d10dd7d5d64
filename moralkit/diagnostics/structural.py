"""Structural indifference: do unsupervised clusters follow moral categories?

(paper §2.4; book: Methods › Structural, methods/structural.md)

Per layer the paper centres the mean-pooled activations over all records, keeps the principal
components that explain 95% of the variance (full SVD), clusters them with HDBSCAN
(``min_cluster_size=100``, ``min_samples=20``, Euclidean) and scores the clusters against three
human label sets: MFT5 (the record's foundation), Polarity3 (virtue / vice / neutral) and MFT15
(foundation x pole). Scores are computed on the non-noise points only, as the paper does; this
module adds two readings the paper lacks: noise counted as a cluster of its own, and the same
scores against permuted labels (a chance control, expected near 0).

**HDBSCAN and the ``min_samples`` convention.** The paper's official code clusters with the
``hdbscan`` package, whose ``min_samples`` counts the *neighbours* of a point, excluding the
point itself. moralkit uses scikit-learn's :class:`sklearn.cluster.HDBSCAN`, whose
``min_samples`` counts the point itself. ``StructuralConfig.min_samples`` is in the paper's
(``hdbscan`` package) convention, and :func:`cluster_layer` passes ``min_samples + 1`` to
scikit-learn, which gives the same core distances and the same partition (tested against the
``hdbscan`` package). The paper's default ``algorithm='best'`` in the ``hdbscan`` package
uses an *approximate* minimum spanning tree (Borůvka, ``approx_min_span_tree=True``) when the
PCA keeps at most 60 dimensions; moralkit's tree is exact, which changes results at some
layers.

UMAP (umap-learn) is used for 2-D pictures only, never for a number.

**Scaling rule.** The paper's HDBSCAN settings were chosen for 16,315 records. A smaller sample
with the same absolute ``min_cluster_size`` could hold no cluster at all, so by default both
settings shrink in proportion to the sample (never grow above the paper's values)::

    min_cluster_size = max(5, round(100 * n / 16315))
    min_samples      = max(2, round(20 * n / 16315))     (the hdbscan package's convention)

Set ``StructuralConfig(scale_with_n=False)`` to use the paper's values as they are.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA
from sklearn.metrics import (
    adjusted_rand_score,
    homogeneity_completeness_v_measure,
    normalized_mutual_info_score,
)
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.centring import centre_activations
from moralkit.diagnostics.inputs import (
    DiagnosticConfig,
    check_alignment,
    check_pooling,
    stored_layers,
)
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, ClaimValue
from moralkit.threads import blas_threads

#: The paper's diagnostic-subset size, the reference for the HDBSCAN scaling rule.
PAPER_N_RECORDS = 16_315
#: The human label sets clusters are compared with (paper §2.4).
LABEL_SETS: tuple[str, ...] = ("MFT5", "Polarity3", "MFT15")
#: How the noise points (HDBSCAN label -1) enter the scores.
SCORINGS: tuple[str, ...] = ("non_noise", "noise_as_cluster", "permuted")
METRICS: tuple[str, ...] = ("ARI", "NMI", "homogeneity", "completeness", "v_measure")


@dataclass(frozen=True)
class StructuralConfig(DiagnosticConfig):
    """Settings of the clustering diagnostic (paper §2.4; book: Methods › Structural).

    ``min_cluster_size`` / ``min_samples`` are the paper's HDBSCAN values for
    ``reference_n`` records, ``min_samples`` in the ``hdbscan`` package's convention (the
    point itself not counted; scikit-learn receives ``min_samples + 1``, see the module
    docstring); with ``scale_with_n`` they shrink in proportion to a smaller sample
    (see :func:`scaled_hdbscan_params`). ``pca_variance`` is the PCA variance fraction,
    ``pca_solver`` the sklearn solver ("full" = the paper's full SVD; "covariance_eigh" gives the
    same components faster when n >> d). ``hdbscan_algorithm`` is passed to sklearn: "brute"
    is exact and fastest in the few-hundred PCA dimensions seen here, but holds an n x n
    distance matrix (about 2 GB at the paper's 16,315 records). ``n_permutations`` label
    shuffles make the permuted-label control (their mean is reported). ``blas_threads`` caps
    BLAS/OpenMP threads during PCA and HDBSCAN: on a busy 2-core machine one thread was 10-40x
    faster than two (spinning threads fight for the cores). Use None (the libraries' default,
    all cores) for the paper's 16,315 records on a many-core machine. ``seed`` drives only
    the label permutations of the chance control; ``layers`` and ``pooling`` as in
    :class:`DiagnosticConfig`.
    """

    min_cluster_size: int = 100
    min_samples: int = 20
    scale_with_n: bool = True
    reference_n: int = PAPER_N_RECORDS
    pca_variance: float = 0.95
    pca_solver: str = "full"
    hdbscan_algorithm: str = "brute"
    n_permutations: int = 5
    blas_threads: int | None = 1


def scaled_hdbscan_params(n: int, config: StructuralConfig = StructuralConfig()) -> tuple[int, int]:
    """``(min_cluster_size, min_samples)`` for a sample of ``n`` records (paper §2.4).

    ``min_samples`` is in the paper's (``hdbscan`` package) convention.

    With ``config.scale_with_n`` the paper's values shrink by ``n / reference_n`` (rounded, floored
    at 5 and 2, never above the paper's values); otherwise they are returned unchanged.
    """
    if n < 1:
        raise ValueError(f"need at least one record to cluster, got n={n}")
    if not config.scale_with_n or n >= config.reference_n:
        return config.min_cluster_size, config.min_samples
    ratio = n / config.reference_n
    mcs = max(5, round(config.min_cluster_size * ratio))
    ms = max(2, round(config.min_samples * ratio))
    return min(mcs, config.min_cluster_size), min(ms, config.min_samples)


def hdbscan_settings(n: int, config: StructuralConfig = StructuralConfig()) -> pd.DataFrame:
    """One row: the records, the HDBSCAN settings used for them (paper's convention, and what
    scikit-learn receives) and the PCA variance kept."""
    mcs, ms = scaled_hdbscan_params(n, config)
    return pd.DataFrame(
        {
            "records": [n],
            f"min_cluster_size (paper: {config.min_cluster_size})": [mcs],
            f"min_samples (paper: {config.min_samples})": [ms],
            "min_samples given to scikit-learn": [sklearn_min_samples(ms)],
            "PCA variance kept": [config.pca_variance],
        }
    )


@dataclass
class LayerClustering:
    """One layer's clustering: the PCA-reduced points, HDBSCAN labels (-1 = noise), settings.

    ``min_samples`` is in the paper's convention (scikit-learn was given one more).
    """

    reduced: np.ndarray
    labels: np.ndarray
    n_components: int
    min_cluster_size: int
    min_samples: int

    @property
    def n_clusters(self) -> int:
        return int(np.unique(self.labels[self.labels >= 0]).size)

    @property
    def noise_ratio(self) -> float:
        return float(np.mean(self.labels == -1))


def cluster_layer(X: np.ndarray, config: StructuralConfig = StructuralConfig()) -> LayerClustering:
    """Centre, reduce by PCA (95% variance) and cluster one layer with HDBSCAN (paper §2.4).

    scikit-learn's ``min_samples`` counts the point itself and the paper's ``hdbscan`` package
    does not, so scikit-learn gets ``min_samples + 1`` (see the module docstring). HDBSCAN is
    deterministic, so no seed is needed.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected one layer's (n, d) activations, got shape {X.shape}")
    n = X.shape[0]
    mcs, ms = scaled_hdbscan_params(n, config)
    if n <= mcs:
        raise ValueError(f"{n} records are too few for HDBSCAN with min_cluster_size={mcs}")
    Xc = centre_activations(X).astype(np.float64)
    with blas_threads(config.blas_threads):
        pca = PCA(n_components=config.pca_variance, svd_solver=config.pca_solver)
        reduced = pca.fit_transform(Xc)
        labels = HDBSCAN(
            min_cluster_size=mcs,
            min_samples=sklearn_min_samples(ms),
            metric="euclidean",
            algorithm=config.hdbscan_algorithm,
            copy=True,
        ).fit_predict(reduced)
    return LayerClustering(reduced, labels, reduced.shape[1], mcs, ms)


def sklearn_min_samples(min_samples: int) -> int:
    """scikit-learn's ``min_samples`` for the ``hdbscan`` package's ``min_samples``.

    The package counts a point's neighbours excluding the point; scikit-learn includes it.
    """
    return int(min_samples) + 1


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
class StructuralResult(AnalysisResult):
    """Clustering diagnostic for one or more models (paper §2.4).

    - ``scores`` (long form): model, layer, relative_depth, n_clusters, noise_ratio,
      n_components, min_cluster_size, min_samples, label_set, scoring, metric, value.
    - ``layers``: one row per model x layer: cluster count, noise ratio, PCA size and the
      HDBSCAN settings used (``min_samples`` in the paper's convention).

    ``best()`` is each model's layer with the highest non-noise ARI against MFT15.
    """

    TABLES = ("scores", "layers")
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
        """ARI against MFT15 (non-noise points) and the noise ratio at each model's best layer."""
        best = self.best()
        base = {"model": best["model"], "diagnostic": "structural", "layer": best["layer"]}
        base.update({"relative_depth": best["relative_depth"], "ci_low": np.nan})
        base["ci_high"] = np.nan
        ari = pd.DataFrame({**base, "metric": "ari_mft15", "value": best["value"]})
        noise = pd.DataFrame({**base, "metric": "noise_ratio", "value": best["noise_ratio"]})
        return pd.concat([ari, noise], ignore_index=True)[list(HEADLINE_COLUMNS)]

    def claim(self) -> list[ClaimValue]:
        """``structural_indifference``: the highest best-layer ARI vs MFT15 over models."""
        best = self.best()
        if best.empty:
            return []
        top = best.loc[best["value"].idxmax()]
        chance = self.metric("ARI", "MFT15", "permuted")["value"]
        note = (
            f"highest best-layer ARI vs MFT15 over models ({top['model']}, layer "
            f"{int(top['layer'])}; non-noise points); permuted-label ARI spans "
            f"[{chance.min():.3f}, {chance.max():.3f}]"
        )
        per_model = {
            str(r.model): {"best_layer": int(r.layer), "ari_mft15": round(float(r.value), 4)}
            for r in best.itertuples()
        }
        value = round(float(top["value"]), 4)
        return [ClaimValue("structural_indifference", value, note, {"per_model": per_model})]


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
    config: StructuralConfig = StructuralConfig(),
    progress: bool = False,
) -> StructuralResult:
    """Per-layer HDBSCAN clustering scored against MFT5, Polarity3 and MFT15 (paper §2.4;
    book: Methods › Structural, methods/structural.md)."""
    check_alignment(acts, records)
    check_pooling(acts, config.pooling)
    labels = label_sets(records)
    frames = []
    chosen = stored_layers(acts, config.layers)
    for layer in tqdm(chosen, desc=f"clustering {acts.model_id}", disable=not progress):
        fit = cluster_layer(acts.get(layer, config.pooling), config)
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
    return StructuralResult({"scores": table, "layers": layer_table}, config)


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
    config: StructuralConfig = StructuralConfig(),
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
