"""Categorical indifference: do opposite moral categories point in opposite directions?

paper-methods §2.2. Per layer, activations are centred over all records, ten category centres
are the means of each category's prototypes, and the headline is the cosine between the
virtue and vice centres of each foundation. The paper reports raw cosines only; this module
adds what a reader needs to judge them:

- a permutation null band: category labels shuffled among the prototype records (group sizes
  kept), so one sees what cosine *random* categories of the same sizes give;
- bootstrap intervals: prototypes resampled within each category.

Both are computed as one sparse weight-matrix product per layer, with the same permutations
and resamples at every layer.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.centring import (
    category_centres,
    category_codes,
    check_alignment,
    iter_centred_layers,
    prototype_mask,
)
from moralkit.foundations import DIMENSIONS, FOUNDATIONS, VICES
from moralkit.records import MoralRecords

N_CATEGORIES = len(DIMENSIONS)
# (virtue index, vice index) per foundation in DIMENSIONS order.
OPPOSED_PAIRS: tuple[tuple[int, int], ...] = tuple((2 * k, 2 * k + 1) for k in range(5))


@dataclass
class CategoricalResult:
    """Tables of the categorical-indifference diagnostic for one model (paper-methods §2.2).

    - ``virtue_vice``: one row per layer x foundation: ``cosine`` of the virtue and vice
      centres, bootstrap ``ci_low``/``ci_high``, permutation ``null_low``/``null_high`` (2.5 and
      97.5 percentiles), ``null_mean``, two-sided permutation ``p_null``, prototype counts.
    - ``by_layer``: one row per layer: ``mean_offdiag_cosine`` over the 45 centre pairs (the
      paper's layer criterion), ``mean_virtue_vice_cosine`` over the foundations with its own
      bootstrap interval and null band, and ``is_optimal``.
    - ``centre_cosines``: the 10x10 centre cosine matrix per layer in long form.
    - ``optimal_layer``: the layer with the lowest mean off-diagonal cosine.
    - ``summary``: one headline row for the model.
    """

    virtue_vice: pd.DataFrame
    by_layer: pd.DataFrame
    centre_cosines: pd.DataFrame
    optimal_layer: int
    summary: pd.DataFrame

    def at_optimal_layer(self) -> pd.DataFrame:
        """The ``virtue_vice`` rows at this model's optimal layer (for cross-model bars)."""
        return self.virtue_vice[self.virtue_vice["layer"] == self.optimal_layer].reset_index(
            drop=True
        )


def cosine_rows(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two equally shaped stacks of vectors (NaN where a row is zero/NaN)."""
    num = np.einsum("...d,...d->...", A, B)
    den = np.linalg.norm(A, axis=-1) * np.linalg.norm(B, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(den > 0, out, np.nan)


def centre_cosine_matrix(centres: np.ndarray) -> np.ndarray:
    """The (10, 10) cosine matrix between category centres (NaN rows stay NaN)."""
    norms = np.linalg.norm(centres, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norms > 0, centres / norms, np.nan)
    return unit @ unit.T


def mean_offdiagonal(matrix: np.ndarray) -> float:
    """Mean of the 45 upper-triangle entries, ignoring NaN (categories without prototypes)."""
    upper = matrix[np.triu_indices(matrix.shape[0], k=1)]
    return float(np.nanmean(upper)) if np.isfinite(upper).any() else float("nan")


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


def opposed_cosines(centres: np.ndarray) -> np.ndarray:
    """Virtue–vice cosines per foundation for (..., 10, d) centres -> (..., 5)."""
    v = centres[..., [a for a, _ in OPPOSED_PAIRS], :]
    w = centres[..., [b for _, b in OPPOSED_PAIRS], :]
    return cosine_rows(v, w)


def _nan_percentile(values: np.ndarray, q: float) -> np.ndarray:
    # Empty categories give all-NaN columns; percentile of those is NaN without a warning.
    finite = np.isfinite(values).any(axis=0)
    out = np.full(values.shape[1:], np.nan)
    if finite.any():
        out[finite] = np.nanpercentile(values[:, finite], q, axis=0)
    return out


def _basic_interval(boot: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Basic (reverse-percentile) bootstrap 95% interval, clipped to the cosine range.

    The cosine of noisy centres is biased toward 0 and resampling doubles that noise, so the
    plain percentile interval can miss the estimate itself near +-1; reflecting the
    percentiles about the estimate corrects the bias to first order.
    """
    low = np.clip(2 * observed - _nan_percentile(boot, 97.5), -1.0, 1.0)
    high = np.clip(2 * observed - _nan_percentile(boot, 2.5), -1.0, 1.0)
    return low, high


def _two_sided_p(null: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Permutation p-value: twice the smaller tail, with the +1 correction, capped at 1."""
    n = np.isfinite(null).sum(axis=0)
    low = (1 + (null <= observed).sum(axis=0)) / (n + 1)
    high = (1 + (null >= observed).sum(axis=0)) / (n + 1)
    p = np.minimum(1.0, 2 * np.minimum(low, high))
    return np.where(np.isfinite(observed) & (n > 0), p, np.nan)


def categorical_indifference(
    acts: ActivationSet,
    records: MoralRecords,
    layers: Sequence[int] | None = None,
    pooling: str = "mean",
    n_permutations: int = 200,
    n_bootstrap: int = 200,
    seed: int = 0,
    progress: bool = True,
    standardise: bool = False,
) -> CategoricalResult:
    """Opposing-category centre analysis per layer (paper-methods §2.2), with a permutation
    null band and bootstrap intervals that the paper does not report.

    Centring uses all records (paper-methods §2.1); centres use prototypes only.
    ``standardise=True`` also scales every dimension to unit variance (a robustness check
    against massive-activation dimensions; not the paper's method). The
    bootstrap resamples prototypes within each category and keeps the centring fixed;
    intervals are basic (reverse-percentile) bootstrap intervals.
    """
    if n_permutations < 1 or n_bootstrap < 1:
        raise ValueError("n_permutations and n_bootstrap must be at least 1")
    check_alignment(acts, records)
    rng = np.random.default_rng(seed)
    proto = prototype_mask(records)
    codes = category_codes(records)[proto]
    n_proto = np.bincount(codes, minlength=N_CATEGORIES)
    missing = [DIMENSIONS[i] for i in np.flatnonzero(n_proto == 0)]
    if missing:
        # Said once here rather than at every layer by category_centres.
        warnings.warn(
            f"{acts.model_id}: no prototype records for categories {missing}; their centres and"
            " the virtue–vice cosines of their foundations are NaN",
            stacklevel=2,
        )
    perm_w = permutation_weights(codes, n_permutations, rng)
    boot_w = bootstrap_weights(codes, n_bootstrap, rng)

    vv_rows, layer_rows, cos_rows = [], [], []
    for layer, depth, Xc in iter_centred_layers(
        acts,
        records,
        layers,
        pooling,
        desc=f"categorical {acts.model_id}",
        progress=progress,
        standardise=standardise,
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty categories were reported above
            centres = category_centres(Xc, records)
        P = Xc[proto]
        observed = opposed_cosines(centres)
        null = opposed_cosines((perm_w @ P).reshape(n_permutations, N_CATEGORIES, -1))
        boot = opposed_cosines((boot_w @ P).reshape(n_bootstrap, N_CATEGORIES, -1))
        # Empty categories produce zero rows in the weight products; mark them missing.
        empty = np.array([n_proto[a] == 0 or n_proto[b] == 0 for a, b in OPPOSED_PAIRS])
        null[:, empty] = np.nan
        boot[:, empty] = np.nan
        matrix = centre_cosine_matrix(centres)
        base = {"model": acts.model_id, "layer": layer, "relative_depth": depth}
        base["pooling"] = pooling
        base["standardised"] = standardise
        ci_low, ci_high = _basic_interval(boot, observed)
        for k, foundation in enumerate(FOUNDATIONS):
            a, b = OPPOSED_PAIRS[k]
            vv_rows.append(
                {
                    **base,
                    "foundation": foundation,
                    "pair": f"{foundation}–{VICES[k]}",
                    "cosine": observed[k],
                    "ci_low": ci_low[k],
                    "ci_high": ci_high[k],
                    "null_low": _nan_percentile(null[:, [k]], 2.5)[0],
                    "null_high": _nan_percentile(null[:, [k]], 97.5)[0],
                    "null_mean": np.nanmean(null[:, k]) if not empty[k] else np.nan,
                    "p_null": _two_sided_p(null[:, [k]], observed[[k]])[0],
                    "n_virtue_prototypes": int(n_proto[a]),
                    "n_vice_prototypes": int(n_proto[b]),
                }
            )
        with np.errstate(invalid="ignore"):
            null_mean_vv = np.nanmean(np.where(empty, np.nan, null), axis=1, keepdims=True)
            boot_mean_vv = np.nanmean(np.where(empty, np.nan, boot), axis=1, keepdims=True)
        mean_vv = np.nanmean(observed) if np.isfinite(observed).any() else np.nan
        mean_low, mean_high = _basic_interval(boot_mean_vv, np.array([mean_vv]))
        layer_rows.append(
            {
                **base,
                "mean_offdiag_cosine": mean_offdiagonal(matrix),
                "mean_virtue_vice_cosine": mean_vv,
                "ci_low": mean_low[0],
                "ci_high": mean_high[0],
                "null_low": _nan_percentile(null_mean_vv, 2.5)[0],
                "null_high": _nan_percentile(null_mean_vv, 97.5)[0],
                "p_null": _two_sided_p(null_mean_vv, np.array([mean_vv]))[0],
            }
        )
        for i, ca in enumerate(DIMENSIONS):
            for j, cb in enumerate(DIMENSIONS):
                cos_rows.append(
                    {**base, "category_a": ca, "category_b": cb, "cosine": matrix[i, j]}
                )

    virtue_vice = pd.DataFrame(vv_rows)
    by_layer = pd.DataFrame(layer_rows)
    if by_layer["mean_offdiag_cosine"].notna().any():
        optimal = int(by_layer.loc[by_layer["mean_offdiag_cosine"].idxmin(), "layer"])
    else:
        optimal = int(by_layer["layer"].iloc[0])
    by_layer["is_optimal"] = by_layer["layer"] == optimal
    centre_cosines = pd.DataFrame(cos_rows)
    return CategoricalResult(
        virtue_vice=virtue_vice,
        by_layer=by_layer,
        centre_cosines=centre_cosines,
        optimal_layer=optimal,
        summary=summarise_categorical(by_layer, virtue_vice, optimal),
    )


def summarise_categorical(
    by_layer: pd.DataFrame, virtue_vice: pd.DataFrame, optimal_layer: int
) -> pd.DataFrame:
    """One headline row: the optimal layer and its mean virtue–vice cosine vs the null band."""
    row = by_layer[by_layer["layer"] == optimal_layer].iloc[0]
    at = virtue_vice[virtue_vice["layer"] == optimal_layer]
    inside = at["cosine"].between(at["null_low"], at["null_high"])
    return pd.DataFrame(
        [
            {
                "model": row["model"],
                "pooling": row["pooling"],
                "standardised": bool(row["standardised"]),
                "optimal_layer": optimal_layer,
                "relative_depth": row["relative_depth"],
                "mean_offdiag_cosine": row["mean_offdiag_cosine"],
                "mean_virtue_vice_cosine": row["mean_virtue_vice_cosine"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "null_low": row["null_low"],
                "null_high": row["null_high"],
                "inside_null": bool(
                    row["null_low"] <= row["mean_virtue_vice_cosine"] <= row["null_high"]
                ),
                "n_foundations_inside_null": int(inside.sum()),
                "most_opposed_foundation": (
                    at.loc[at["cosine"].idxmin(), "foundation"]
                    if at["cosine"].notna().any()
                    else None
                ),
                "n_layers": len(by_layer),
            }
        ]
    )
