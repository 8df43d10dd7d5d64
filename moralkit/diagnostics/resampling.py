"""Resampling shared by the diagnostics' intervals and tests.

(paper §2.2; book: Methods › Categorical, methods/categorical.md, and Methods › Power, controls
and stability, methods/power.md.)

- Label permutations and within-category bootstraps of category centres, each resample a row
  of a sparse averaging matrix, so all of a layer's resamples are one product with its
  prototype activations; the percentile bands, basic intervals and permutation p-values read
  from them.
- :func:`bootstrap_counts`: how often each of ``n`` items is drawn in each of many bootstrap
  resamples, in chunks, for statistics that are weighted sums (R², contingency tables), and
  :func:`percentile_interval` of the resampled values.
- :func:`percentile_of` and :func:`permutation_p`: where an effect falls among random draws
  (chapters 09 and 10's random-set controls).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse, stats

from moralkit.foundations import DIMENSIONS

N_CATEGORIES = len(DIMENSIONS)


def permutation_weights(codes: np.ndarray, n_permutations: int, rng: np.random.Generator):
    """Sparse (n_permutations * 10, n) matrix whose rows average a label-permuted category.

    Labels are shuffled among the given records, so every permuted category keeps its size.
    """
    n = codes.size
    counts = np.bincount(codes, minlength=N_CATEGORIES).astype(np.float64)
    perms = np.stack([rng.permutation(codes) for _ in range(n_permutations)])
    rows = (np.arange(n_permutations)[:, None] * N_CATEGORIES + perms).ravel()
    cols = np.tile(np.arange(n), n_permutations)
    with np.errstate(divide="ignore"):
        vals = (1.0 / counts)[perms].ravel()
    return sparse.csr_matrix((vals, (rows, cols)), shape=(n_permutations * N_CATEGORIES, n))


def bootstrap_weights(codes: np.ndarray, n_bootstrap: int, rng: np.random.Generator):
    """Sparse (n_bootstrap * 10, n) matrix whose rows average a within-category resample."""
    n = codes.size
    rows, cols, vals = [], [], []
    for c in range(N_CATEGORIES):
        members = np.flatnonzero(codes == c)
        if members.size == 0:
            continue
        draws = rng.choice(members, size=(n_bootstrap, members.size), replace=True)
        rows.append(np.repeat(np.arange(n_bootstrap) * N_CATEGORIES + c, members.size))
        cols.append(draws.ravel())
        vals.append(np.full(draws.size, 1.0 / members.size))
    if not rows:
        return sparse.csr_matrix((n_bootstrap * N_CATEGORIES, n))
    # Duplicate (row, col) pairs are summed, which is what a resample with repeats means.
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_bootstrap * N_CATEGORIES, n),
    )


def nan_percentile(values: np.ndarray, q: float) -> np.ndarray:
    # Empty categories give all-NaN columns; percentile of those is NaN without a warning.
    finite = np.isfinite(values).any(axis=0)
    out = np.full(values.shape[1:], np.nan)
    if finite.any():
        out[finite] = np.nanpercentile(values[:, finite], q, axis=0)
    return out


def basic_interval(boot: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Basic (reverse-percentile) bootstrap 95% interval, clipped to the cosine range.

    The cosine of noisy centres is biased toward 0 and resampling doubles that noise, so the
    plain percentile interval can miss the estimate itself near +-1; reflecting the
    percentiles about the estimate corrects the bias to first order.
    """
    low = np.clip(2 * observed - nan_percentile(boot, 97.5), -1.0, 1.0)
    high = np.clip(2 * observed - nan_percentile(boot, 2.5), -1.0, 1.0)
    return low, high


def lower_tail_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """One-sided permutation p-value that ``observed`` lies below the null (+1 correction).

    Small when the virtue and vice centres are more opposed than label-shuffled categories:
    the test of separation, the direction the paper's indifference claim denies.
    """
    n = np.isfinite(null).sum(axis=0)
    p = (1 + (null <= observed).sum(axis=0)) / (n + 1)
    return np.where(np.isfinite(observed) & (n > 0), p, np.nan)


def two_sided_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Permutation p-value: twice the smaller tail, with the +1 correction, capped at 1."""
    n = np.isfinite(null).sum(axis=0)
    low = (1 + (null <= observed).sum(axis=0)) / (n + 1)
    high = (1 + (null >= observed).sum(axis=0)) / (n + 1)
    p = np.minimum(1.0, 2 * np.minimum(low, high))
    return np.where(np.isfinite(observed) & (n > 0), p, np.nan)


def bootstrap_counts(
    n: int, n_bootstrap: int, rng: np.random.Generator, chunk: int = 250
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(draws, counts)`` per chunk of at most ``chunk`` resamples of ``n`` items:
    ``draws`` (B, n) the drawn indices, ``counts`` (B, n) how often each item was drawn."""
    for size in np.diff(np.r_[0:n_bootstrap:chunk, n_bootstrap]):
        draws = rng.integers(0, n, (size, n))
        flat = (draws + np.arange(size)[:, None] * n).ravel()
        yield draws, np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` percentile interval of resampled values (NaN ignored)."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def percentile_of(value: float | np.ndarray, null: np.ndarray) -> np.ndarray | float:
    """Percentile (0-100) of ``value`` among ``null`` (last axis), ties counted one half.

    ``value`` may be an array broadcasting against ``null[..., 0]`` (one value per resample).
    """
    null = np.asarray(null, dtype=np.float64)
    if null.shape[-1] == 0:
        raise ValueError("percentile_of needs at least one random value")
    value = np.asarray(value, dtype=np.float64)[..., None]
    below = (null < value).sum(-1) + 0.5 * (null == value).sum(-1)
    out = 100.0 * below / null.shape[-1]
    return float(out) if out.ndim == 0 else out


def permutation_p(value: float, null: np.ndarray) -> float:
    """One-sided p-value of ``value`` among the random values: (1 + #{null >= value}) / (1 + n)."""
    null = np.asarray(null, dtype=np.float64)
    return float((1 + (null >= value).sum()) / (1 + null.size))


def fisher_interval(r: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher-z confidence interval for a Pearson correlation (paper §2.3)."""
    if not np.isfinite(r) or n <= 3:
        return float("nan"), float("nan")
    z = np.arctanh(np.clip(r, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + level / 2) / np.sqrt(n - 3)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _resampled_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of ``values`` inside each bootstrap resample, without re-sorting.

    ``weights`` (B, n) holds how often each original element was drawn. Within a resample,
    an element's average rank is the count of drawn elements below its value plus half its
    tie group, which cumulative sums over the sorted unique values give for all rows at once.
    """
    unique, inverse = np.unique(values, return_inverse=True)
    onehot = sparse.csr_matrix(
        (np.ones(values.size), (np.arange(values.size), inverse)), shape=(values.size, unique.size)
    )
    per_value = np.asarray((onehot.T @ weights.T).T)  # (B, n_unique) draws per distinct value
    ranks = np.cumsum(per_value, axis=1) - (per_value - 1) / 2
    return ranks[:, inverse]


def bootstrap_spearman(x: np.ndarray, y: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Spearman rho of each resample ``draws[b]`` (indices into x, y); equals ranking the
    resampled arrays with average ties, computed as a weighted Pearson of ranks."""
    B, n = draws.shape[0], x.size
    flat = (draws + np.arange(B)[:, None] * n).ravel()
    weights = np.bincount(flat, minlength=B * n).reshape(B, n).astype(np.float64)
    rx, ry = _resampled_ranks(x, weights), _resampled_ranks(y, weights)
    total = weights.sum(axis=1, keepdims=True)
    rx -= (weights * rx).sum(axis=1, keepdims=True) / total
    ry -= (weights * ry).sum(axis=1, keepdims=True) / total
    cov = (weights * rx * ry).sum(axis=1)
    den = np.sqrt((weights * rx**2).sum(axis=1) * (weights * ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, cov / den, np.nan)
