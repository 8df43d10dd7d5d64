"""Agreement between two partitions: fast ARI, its interval, its test and row-order stability.

(paper §2.4; book: Methods › Structural, methods/structural.md, and Methods › Power, controls
and stability, methods/power.md.) The structural diagnostic's claim is an adjusted Rand index
(ARI) between HDBSCAN clusters and human labels. Three things a verdict on it needs, computed
from contingency tables so thousands of resamples take a fraction of a second:

- :func:`ari_interval`: a percentile bootstrap interval over points, *conditional on the
  clustering* (the clustering is not refitted per resample); pairs of copies of one point
  are left out of every pair count, since they agree trivially and would bias the ARI up;
- :func:`ari_permutation_test`: the one-sided label-permutation p-value of an ARI;
- :func:`clustering_stability`: the ARI between the clustering of the points and clusterings
  of row-permuted copies of the same points (HDBSCAN breaks ties in the order rows arrive, so
  a setting can flip between very different partitions on row order alone).

.. math::

   \\text{ARI} = \\frac{\\sum_{ij}\\binom{n_{ij}}{2} - \\sum_i\\binom{a_i}{2}
   \\sum_j\\binom{b_j}{2} / \\binom{n}{2}}{\\tfrac12\\left[\\sum_i\\binom{a_i}{2} +
   \\sum_j\\binom{b_j}{2}\\right] - \\sum_i\\binom{a_i}{2}\\sum_j\\binom{b_j}{2} / \\binom{n}{2}}
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from moralkit.diagnostics.resampling import bootstrap_counts, percentile_interval


def _codes(labels: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(labels), return_inverse=True)[1].ravel()


def _pairs(counts: np.ndarray) -> np.ndarray:
    return counts * (counts - 1) / 2.0


def ari_from_counts(table: np.ndarray, tied: np.ndarray | float = 0.0) -> np.ndarray:
    """ARI of one or more contingency tables (``(..., r, c)`` counts).

    Equals :func:`sklearn.metrics.adjusted_rand_score`, including its special case: two
    partitions that are both one cluster (or both all singletons) score 1.0. ``tied`` is the
    number of pairs made of copies of one point (a bootstrap draws points more than once);
    they agree in both partitions by construction, so they are left out of every pair count.
    """
    table = np.asarray(table, dtype=np.float64)
    tied = np.asarray(tied, dtype=np.float64)
    n_pairs = _pairs(table.sum(axis=(-2, -1))) - tied
    index = _pairs(table).sum(axis=(-2, -1)) - tied
    rows = _pairs(table.sum(axis=-1)).sum(axis=-1) - tied
    cols = _pairs(table.sum(axis=-2)).sum(axis=-1) - tied
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = rows * cols / n_pairs
        maximum = (rows + cols) / 2.0
        ari = (index - expected) / (maximum - expected)
    return np.where(maximum == expected, 1.0, ari)


def fast_ari(truth: np.ndarray, clusters: np.ndarray) -> float:
    """ARI of two labelings of the same points (NaN for fewer than two points)."""
    if len(truth) < 2:
        return float("nan")
    a, b = _codes(truth), _codes(clusters)
    table = np.zeros((a.max() + 1, b.max() + 1))
    np.add.at(table, (a, b), 1.0)
    return float(ari_from_counts(table))


def _resampled_tables(cells: np.ndarray, shape: tuple[int, int], draws: np.ndarray) -> np.ndarray:
    """(B, r, c) contingency tables of ``B`` index draws over points with cell ids ``cells``."""
    size = shape[0] * shape[1]
    flat = cells[draws] + np.arange(draws.shape[0])[:, None] * size
    counts = np.bincount(flat.ravel(), minlength=draws.shape[0] * size)
    return counts.reshape(draws.shape[0], *shape)


def ari_interval(
    truth: np.ndarray,
    clusters: np.ndarray,
    n_bootstrap: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ARI over points, holding the clusters fixed."""
    a, b = _codes(truth), _codes(clusters)
    n = a.size
    if n < 2 or n_bootstrap < 1:
        return float("nan"), float("nan")
    shape = (int(a.max()) + 1, int(b.max()) + 1)
    cells = a * shape[1] + b
    boot = [
        ari_from_counts(_resampled_tables(cells, shape, draws), _pairs(copies).sum(axis=1))
        for draws, copies in bootstrap_counts(n, n_bootstrap, rng)
    ]
    return percentile_interval(np.concatenate(boot), level)


def ari_permutation_test(
    truth: np.ndarray, clusters: np.ndarray, n_permutations: int, rng: np.random.Generator
) -> tuple[float, float]:
    """``(ari, p)``: the ARI and the share of label permutations scoring at least as high
    (with the +1 correction). NaN and 1.0 for fewer than two points."""
    a, b = _codes(truth), _codes(clusters)
    if a.size < 2:
        return float("nan"), 1.0
    observed = fast_ari(a, b)
    shape = (int(a.max()) + 1, int(b.max()) + 1)
    # permuting the truth labels = drawing the cells of permuted pairs
    perms = np.stack([rng.permutation(a) for _ in range(n_permutations)])
    flat = perms * shape[1] + b + np.arange(n_permutations)[:, None] * shape[0] * shape[1]
    counts = np.bincount(flat.ravel(), minlength=n_permutations * shape[0] * shape[1])
    null = ari_from_counts(counts.reshape(n_permutations, *shape))
    return observed, float((1 + np.sum(null >= observed - 1e-12)) / (n_permutations + 1))


def clustering_stability(
    X: np.ndarray,
    cluster: Callable[[np.ndarray], np.ndarray],
    n_permutations: int,
    seed: int = 0,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """ARI (noise counted as one more cluster) between the clustering of ``X`` and each of
    ``n_permutations`` clusterings of row-permuted copies, mapped back to the original rows.

    ``cluster`` maps an (n, d) array to n labels; ``reference`` is the clustering of ``X`` in
    its own order when already known.
    """
    base = cluster(X) if reference is None else np.asarray(reference)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_permutations):
        order = rng.permutation(X.shape[0])
        labels = np.empty_like(base)
        labels[order] = cluster(X[order])
        out.append(fast_ari(base, labels))
    return np.asarray(out)
