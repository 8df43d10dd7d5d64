"""Categorical indifference: do opposite moral categories point in opposite directions?

(paper §2.2; book: Methods › Categorical, methods/categorical.md)

Per layer, activations are centred over all records, ten category centres are the means of each
category's prototypes, and the headline is the cosine between the virtue and vice centres of
each foundation. The paper reports raw cosines only; this module adds what a reader needs to
judge them:

- a permutation null band: category labels shuffled among the prototype records (group sizes
  kept), so one sees what cosine *random* categories of the same sizes give;
- bootstrap intervals: prototypes resampled within each category.

Both are computed as one sparse weight-matrix product per layer, with the same permutations
and resamples at every layer.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.centring import (
    category_centres,
    category_codes,
    iter_centred_layers,
    prototype_mask,
)
from moralkit.diagnostics.inputs import DiagnosticConfig, check_alignment
from moralkit.foundations import DIMENSIONS, FOUNDATIONS, VICES
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, ClaimValue

N_CATEGORIES = len(DIMENSIONS)
# (virtue index, vice index) per foundation in DIMENSIONS order.
OPPOSED_PAIRS: tuple[tuple[int, int], ...] = tuple((2 * k, 2 * k + 1) for k in range(5))


@dataclass(frozen=True)
class CategoricalConfig(DiagnosticConfig):
    """Settings of the categorical diagnostic (paper §2.2; book: Methods › Categorical).

    ``n_permutations`` label shuffles make the null band, ``n_bootstrap`` within-category
    resamples the intervals. ``standardise=True`` also scales every centred dimension to unit
    variance: a robustness check against massive-activation dimensions, not the paper's
    method. ``layers``, ``pooling`` and ``seed`` as in :class:`DiagnosticConfig`.
    """

    n_permutations: int = 200
    n_bootstrap: int = 200
    standardise: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_permutations < 1 or self.n_bootstrap < 1:
            raise ValueError(
                f"n_permutations={self.n_permutations} and n_bootstrap={self.n_bootstrap}"
                " must both be at least 1"
            )


@dataclass
class CategoricalResult(AnalysisResult):
    """Tables of the categorical diagnostic, for one or more models (paper §2.2).

    - ``virtue_vice``: one row per model x layer x foundation: ``cosine`` of the virtue and
      vice centres, bootstrap ``ci_low``/``ci_high``, permutation ``null_low``/``null_high``
      (2.5 and 97.5 percentiles), ``null_mean``, two-sided permutation ``p_null``, prototype
      counts.
    - ``by_layer``: one row per model x layer: ``mean_offdiag_cosine`` over the 45 centre
      pairs (the paper's layer criterion), ``mean_virtue_vice_cosine`` over the foundations
      with its own bootstrap interval and null band, and ``is_optimal``.
    - ``centre_cosines``: the 10x10 centre cosine matrix per model x layer in long form.
    - ``summary``: one headline row per model at its optimal layer (lowest mean off-diagonal
      cosine), with ``inside_null``.

    ``best()`` is the optimal-layer row of ``by_layer`` per model.
    """

    TABLES = ("virtue_vice", "by_layer", "centre_cosines", "summary")
    BEST_TABLE = "by_layer"
    BEST_COLUMN = "mean_offdiag_cosine"
    BEST_LOWER = True
    BEST_GROUP = ("model", "pooling", "standardised")

    @property
    def optimal_layers(self) -> dict[str, int]:
        """Each model's optimal layer."""
        summary = self.tables["summary"]
        return {
            str(m): int(x) for m, x in zip(summary["model"], summary["optimal_layer"], strict=True)
        }

    def at_optimal_layer(self) -> pd.DataFrame:
        """The ``virtue_vice`` rows at each model's optimal layer (for cross-model bars)."""
        keys = self.tables["summary"][["model", "optimal_layer"]]
        keys = keys.rename(columns={"optimal_layer": "layer"})
        return self.tables["virtue_vice"].merge(keys, on=["model", "layer"])

    def centre_cosines_at_optimal_layer(self, model: str) -> pd.DataFrame:
        """One model's 10x10 centre cosines (long form) at its optimal layer."""
        table = self.tables["centre_cosines"]
        layer = self.optimal_layers[model]
        return table[(table["model"] == model) & (table["layer"] == layer)].reset_index(drop=True)

    def headline(self) -> pd.DataFrame:
        """Mean virtue–vice cosine (with its bootstrap interval) and mean off-diagonal cosine
        at each model's optimal layer."""
        s = self.tables["summary"]
        base = {"model": s["model"], "diagnostic": "categorical", "layer": s["optimal_layer"]}
        base["relative_depth"] = s["relative_depth"]
        vv = pd.DataFrame({**base, "metric": "virtue_vice_cosine"})
        vv["value"], vv["ci_low"], vv["ci_high"] = (
            s["mean_virtue_vice_cosine"], s["ci_low"], s["ci_high"]
        )  # fmt: skip
        off = pd.DataFrame({**base, "metric": "mean_offdiag_cosine"})
        off["value"], off["ci_low"], off["ci_high"] = s["mean_offdiag_cosine"], np.nan, np.nan
        return pd.concat([vv, off], ignore_index=True)[list(HEADLINE_COLUMNS)]

    def claim(self) -> list[ClaimValue]:
        """``categorical_indifference``: the first model's mean virtue–vice cosine at its
        optimal layer; judged on ``inside_null_band`` (every model inside its null band)."""
        s = self.tables["summary"]
        if s.empty or bool(s["standardised"].any()):
            return []  # the standardised variant is a robustness check, not the claim
        head = s.iloc[0]
        inside_all = bool(s["inside_null"].all())
        per_model = {
            str(r.model): {
                "optimal_layer": int(r.optimal_layer),
                "mean_virtue_vice_cosine": round(float(r.mean_virtue_vice_cosine), 4),
                "null_band": [round(float(r.null_low), 4), round(float(r.null_high), 4)],
                "inside_null_band": bool(r.inside_null),
            }
            for r in s.itertuples()
        }
        note = (
            f"mean virtue–vice cosine at the optimal layer of {head['model']} (layer "
            f"{int(head['optimal_layer'])}); null band [{head['null_low']:.3f}, "
            f"{head['null_high']:.3f}]; all models inside: {inside_all}"
        )
        return [
            ClaimValue(
                "categorical_indifference",
                round(float(head["mean_virtue_vice_cosine"]), 4),
                note=note,
                extra={"inside_null_band": inside_all, "per_model": per_model},
            )
        ]


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


def _foundation_rows(
    base: dict, observed: np.ndarray, null: np.ndarray, boot: np.ndarray, n_proto: np.ndarray
) -> list[dict]:
    """One ``virtue_vice`` row per foundation of one layer."""
    ci_low, ci_high = _basic_interval(boot, observed)
    rows = []
    for k, foundation in enumerate(FOUNDATIONS):
        a, b = OPPOSED_PAIRS[k]
        finite = np.isfinite(null[:, k]).any()
        rows.append(
            {
                **base,
                "foundation": foundation,
                "pair": f"{foundation}–{VICES[k]}",
                "cosine": observed[k],
                "ci_low": ci_low[k],
                "ci_high": ci_high[k],
                "null_low": _nan_percentile(null[:, [k]], 2.5)[0],
                "null_high": _nan_percentile(null[:, [k]], 97.5)[0],
                "null_mean": np.nanmean(null[:, k]) if finite else np.nan,
                "p_null": _two_sided_p(null[:, [k]], observed[[k]])[0],
                "n_virtue_prototypes": int(n_proto[a]),
                "n_vice_prototypes": int(n_proto[b]),
            }
        )
    return rows


def _layer_row(
    base: dict, observed: np.ndarray, null: np.ndarray, boot: np.ndarray, matrix: np.ndarray
) -> dict:
    """The ``by_layer`` row of one layer: means over foundations with their interval and band."""
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: empty categories
        null_mean_vv = np.nanmean(null, axis=1, keepdims=True)
        boot_mean_vv = np.nanmean(boot, axis=1, keepdims=True)
    mean_vv = np.nanmean(observed) if np.isfinite(observed).any() else np.nan
    mean_low, mean_high = _basic_interval(boot_mean_vv, np.array([mean_vv]))
    return {
        **base,
        "mean_offdiag_cosine": mean_offdiagonal(matrix),
        "mean_virtue_vice_cosine": mean_vv,
        "ci_low": mean_low[0],
        "ci_high": mean_high[0],
        "null_low": _nan_percentile(null_mean_vv, 2.5)[0],
        "null_high": _nan_percentile(null_mean_vv, 97.5)[0],
        "p_null": _two_sided_p(null_mean_vv, np.array([mean_vv]))[0],
    }


def _warn_missing_prototypes(model_id: str, n_proto: np.ndarray) -> None:
    missing = [DIMENSIONS[i] for i in np.flatnonzero(n_proto == 0)]
    if missing:
        # Said once here rather than at every layer by category_centres.
        warnings.warn(
            f"{model_id}: no prototype records for categories {missing}; their centres and"
            " the virtue–vice cosines of their foundations are NaN",
            stacklevel=3,
        )


def categorical_indifference(
    acts: ActivationSet,
    records: MoralRecords,
    config: CategoricalConfig = CategoricalConfig(),
    progress: bool = False,
) -> CategoricalResult:
    """Opposing-category centre analysis per layer (paper §2.2; book: Methods › Categorical,
    methods/categorical.md), with a permutation null band and bootstrap intervals that the
    paper does not report.

    Centring uses all records (paper §2.1); centres use prototypes only. The bootstrap
    resamples prototypes within each category and keeps the centring fixed; intervals are
    basic (reverse-percentile) bootstrap intervals.
    """
    check_alignment(acts, records)
    rng = np.random.default_rng(config.seed)
    proto = prototype_mask(records)
    codes = category_codes(records)[proto]
    n_proto = np.bincount(codes, minlength=N_CATEGORIES)
    _warn_missing_prototypes(acts.model_id, n_proto)
    perm_w = permutation_weights(codes, config.n_permutations, rng)
    boot_w = bootstrap_weights(codes, config.n_bootstrap, rng)
    # Empty categories produce zero rows in the weight products; mark them missing.
    empty = np.array([n_proto[a] == 0 or n_proto[b] == 0 for a, b in OPPOSED_PAIRS])

    vv_rows, layer_rows, cos_rows = [], [], []
    layers = iter_centred_layers(
        acts, records, config.layers, config.pooling, desc=f"categorical {acts.model_id}",
        progress=progress, standardise=config.standardise,
    )  # fmt: skip
    for layer, depth, Xc in layers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty categories were reported above
            centres = category_centres(Xc, records)
        P = Xc[proto]
        observed = opposed_cosines(centres)
        null = opposed_cosines((perm_w @ P).reshape(config.n_permutations, N_CATEGORIES, -1))
        boot = opposed_cosines((boot_w @ P).reshape(config.n_bootstrap, N_CATEGORIES, -1))
        null[:, empty] = np.nan
        boot[:, empty] = np.nan
        matrix = centre_cosine_matrix(centres)
        base = {"model": acts.model_id, "layer": layer, "relative_depth": depth}
        base.update(pooling=config.pooling, standardised=config.standardise)
        vv_rows.extend(_foundation_rows(base, observed, null, boot, n_proto))
        layer_rows.append(_layer_row(base, observed, null, boot, matrix))
        cos_rows.extend(
            {**base, "category_a": ca, "category_b": cb, "cosine": matrix[i, j]}
            for i, ca in enumerate(DIMENSIONS)
            for j, cb in enumerate(DIMENSIONS)
        )

    virtue_vice = pd.DataFrame(vv_rows)
    by_layer = pd.DataFrame(layer_rows)
    if by_layer["mean_offdiag_cosine"].notna().any():
        optimal = int(by_layer.loc[by_layer["mean_offdiag_cosine"].idxmin(), "layer"])
    else:
        optimal = int(by_layer["layer"].iloc[0])
    by_layer["is_optimal"] = by_layer["layer"] == optimal
    tables = {
        "virtue_vice": virtue_vice,
        "by_layer": by_layer,
        "centre_cosines": pd.DataFrame(cos_rows),
        "summary": summarise_categorical(by_layer, virtue_vice, optimal),
    }
    return CategoricalResult(tables, config)


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
