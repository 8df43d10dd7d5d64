"""HDBSCAN on one layer, as the paper clusters it: settings, scaling rule and the fit.

(paper §2.4; book: Methods › Structural, methods/structural.md.) Per layer the activations are
centred over all records, reduced by PCA to the components explaining 95% of the variance and
clustered with HDBSCAN; :mod:`moralkit.diagnostics.structural` scores the clusters.

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

**Scaling rule.** The paper's HDBSCAN settings were chosen for 16,315 records. A smaller sample
with the same absolute ``min_cluster_size`` could hold no cluster at all, so by default both
settings shrink in proportion to the sample (never grow above the paper's values)::

    min_cluster_size = max(5, round(100 * n / 16315))
    min_samples      = max(2, round(20 * n / 16315))     (the hdbscan package's convention)

Set ``StructuralConfig(scale_with_n=False)`` to use the paper's values as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.cluster import HDBSCAN
from sklearn.decomposition import PCA

from moralkit.diagnostics.centring import centre_activations
from moralkit.diagnostics.inputs import DiagnosticConfig
from moralkit.threads import blas_threads

#: The paper's diagnostic-subset size, the reference for the HDBSCAN scaling rule.
PAPER_N_RECORDS = 16_315


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
    all cores) for the paper's 16,315 records on a many-core machine. ``seed`` drives the
    label permutations of the chance control, the bootstrap and the row orders of the
    stability check; ``layers`` and ``pooling`` as in :class:`DiagnosticConfig`.
    ``n_bootstrap`` resamples the best layer's ARI interval; ``stability_permutations``
    row-permuted re-clusterings of the best layer must agree with it at ARI >=
    ``stability_level`` (stated before any run: a partition that changes with row order by
    more than that is not a result).
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
    n_bootstrap: int = 1000
    stability_permutations: int = 3
    stability_level: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_bootstrap < 0 or self.stability_permutations < 0:
            raise ValueError(
                f"n_bootstrap={self.n_bootstrap} and stability_permutations="
                f"{self.stability_permutations} must be >= 0"
            )
        if not 0 < self.stability_level <= 1:
            raise ValueError(f"stability_level={self.stability_level} must lie in (0, 1]")


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
