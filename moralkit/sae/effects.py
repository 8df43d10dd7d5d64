"""The four diagnostics' primary metrics on one set of vectors, with paired bootstrap draws
(paper §2.2-2.5, §5.4; book: Methods › SAE surgery, methods/sae.md).

The SAE surgery's effect is a difference between conditions on the same records (fine-tuned
minus pretrained reconstruction, or codes). Its interval comes from a paired bootstrap: one
set of record draws (:func:`record_draws`) is shared by every condition, and each condition's
metric is evaluated on every draw, so a difference's draws are differences of paired values.

Each metric is the diagnostic's own headline, computed with the diagnostic's own functions, and
each draw resamples what that diagnostic's own interval resamples:

- ``categorical``, ``virtue_vice_cosine``: mean over the five foundations of the cosine between
  virtue and vice prototype centres (centring on all records fixed; prototypes resampled within
  their category, as :func:`~moralkit.diagnostics.categorical.categorical_indifference`);
- ``gradient``, ``spearman_heldout``: Spearman ρ between cosine-to-centre and typicality, the
  centres built from one half of the prototypes (``split_prototypes``) and fixed, the pairs of
  the other records resampled (as :func:`~moralkit.diagnostics.gradient.correlate_pairs`);
- ``structural``, ``ari_mft15``: ARI of the HDBSCAN clusters (fitted once) against the 15
  foundation × pole groups on non-noise records, records resampled with their cluster;
- ``dimensional``, ``r2_ridge_cv``: R² of the cross-validated ridge probe's out-of-fold
  predictions (fitted once), records resampled with their prediction.

The last two are intervals *given the fit* (refitting HDBSCAN and the probe a thousand times
per condition is beyond a CPU budget); the methods page says so.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse, stats

from moralkit.diagnostics.categorical import N_CATEGORIES, opposed_cosines
from moralkit.diagnostics.centring import (
    category_centres,
    category_codes,
    centre_activations,
    prototype_mask,
)
from moralkit.diagnostics.dimensional import DimensionalConfig, fit_ridge_probe
from moralkit.diagnostics.gradient import gradient_pairs, split_prototypes
from moralkit.diagnostics.resampling import bootstrap_spearman
from moralkit.diagnostics.structural import StructuralConfig, cluster_layer, label_sets
from moralkit.records import MoralRecords

__all__ = [
    "EFFECT_METRICS",
    "MetricDraws",
    "applicable",
    "metric_draws",
    "record_draws",
]

#: diagnostic -> (metric, +1 if higher is less indifferent, -1 if lower is)
EFFECT_METRICS: dict[str, tuple[str, int]] = {
    "categorical": ("virtue_vice_cosine", -1),
    "gradient": ("spearman_heldout", +1),
    "structural": ("ari_mft15", +1),
    "dimensional": ("r2_ridge_cv", +1),
}


@dataclass
class MetricDraws:
    """One diagnostic's metric on all records (``estimate``) and on each draw (``draws``)."""

    diagnostic: str
    estimate: float
    draws: np.ndarray
    detail: dict = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return EFFECT_METRICS[self.diagnostic][0]


def applicable(records: MoralRecords, which: Sequence[str]) -> list[str]:
    """The diagnostics of ``which`` these records support: the categorical one needs virtue and
    vice prototypes, the gradient one graded typicality."""
    codes = category_codes(records)[prototype_mask(records)]
    present = np.bincount(codes, minlength=N_CATEGORIES) > 0
    out = []
    for name in which:
        if name == "categorical" and not (present[0::2] & present[1::2]).any():
            continue
        if name == "gradient" and not records.has_typicality:
            continue
        out.append(name)
    return out


def _strata(records: MoralRecords, seed: int) -> np.ndarray:
    table = records.table
    half = split_prototypes(records, seed) if records.has_typicality else np.zeros(len(table))
    parts = [table["category"].astype(str), table["is_prototype"].astype(str), half.astype(str)]
    return (parts[0] + "|" + parts[1] + "|" + parts[2]).to_numpy()


def record_draws(records: MoralRecords, n_draws: int, seed: int = 0) -> np.ndarray:
    """(n_draws, n) record indices: each draw resamples every stratum (category x prototype x
    gradient half) with replacement at its own size, so every draw has the composition every
    diagnostic's own bootstrap keeps fixed. Shared by all conditions: the bootstrap is paired."""
    rng = np.random.default_rng(seed)
    strata = _strata(records, seed)
    draws = np.empty((n_draws, len(records)), dtype=np.int64)
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        draws[:, members] = members[rng.integers(0, members.size, (n_draws, members.size))]
    return draws


def _weights(draws: np.ndarray, n: int) -> np.ndarray:
    """(B, n) how often each record is drawn in each draw."""
    B = len(draws)
    flat = (draws + np.arange(B)[:, None] * n).ravel()
    return np.bincount(flat, minlength=B * n).reshape(B, n).astype(np.float64)


def _categorical(X, records, W) -> MetricDraws:
    Xc = centre_activations(np.asarray(X, dtype=np.float64))
    proto = prototype_mask(records)
    codes = category_codes(records)[proto]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty categories: NaN centres
        estimate = float(np.nanmean(opposed_cosines(category_centres(Xc, records))))
    P, Wp = Xc[proto], W[:, proto]
    onehot = (codes[None, :] == np.arange(N_CATEGORIES)[:, None]).astype(np.float64)
    values = np.empty(len(W))
    for start in range(0, len(W), 100):
        block = Wp[start : start + 100, None, :] * onehot[None]  # (b, 10, n_proto)
        sums = np.einsum("bcn,nd->bcd", block, P, optimize=True)
        counts = block.sum(axis=2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values[start : start + len(block)] = np.nanmean(opposed_cosines(sums / counts), axis=1)
    return MetricDraws("categorical", estimate, values)


def _gradient(X, records, draws, seed: int) -> MetricDraws:
    Xc = centre_activations(np.asarray(X, dtype=np.float64))
    half = split_prototypes(records, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        centres = category_centres(Xc, records, mask=half)
    pairs = gradient_pairs(Xc, records, centres, include=~half)
    finite = np.isfinite(pairs["x"].to_numpy())
    pairs = pairs[finite].reset_index(drop=True)
    x, y = pairs["x"].to_numpy(), pairs["y"].to_numpy()
    estimate = float(stats.spearmanr(x, y).statistic) if len(x) > 2 else float("nan")
    values = _pair_spearman(x, y, pairs["record"].to_numpy(), draws, len(records))
    return MetricDraws("gradient", estimate, values, {"n_pairs": len(x)})


def _pair_spearman(x, y, pair_record: np.ndarray, draws: np.ndarray, n: int) -> np.ndarray:
    """Spearman ρ of the pairs of each draw's records (a record has 0, 1 or 2 pairs)."""
    order = np.argsort(pair_record, kind="stable")
    count = np.bincount(pair_record, minlength=n)
    offset = np.concatenate([[0], np.cumsum(count)[:-1]])
    cnt, start = count[draws], offset[draws]  # (B, n)
    totals = cnt.sum(axis=1)
    if len(x) < 3 or totals.min() != totals.max():  # no pairs, or a ragged draw: one by one
        rows = [order[np.repeat(st - np.cumsum(c) + c, c) + np.arange(c.sum())]
                for c, st in zip(cnt, start, strict=True)]  # fmt: skip
        return np.array([stats.spearmanr(x[r], y[r]).statistic if len(r) > 2 else np.nan
                         for r in rows])  # fmt: skip
    flat_c, flat_s = cnt.ravel(), start.ravel()
    idx = np.repeat(flat_s - np.cumsum(flat_c) + flat_c, flat_c) + np.arange(flat_c.sum())
    return bootstrap_spearman(x, y, order[idx].reshape(len(draws), -1))


def _ari(contingency: np.ndarray) -> np.ndarray:
    """ARI of each (B, t, k) contingency table (sklearn's formula, vectorised)."""
    comb = lambda a: a * (a - 1) / 2  # noqa: E731
    n = contingency.sum(axis=(1, 2))
    index = comb(contingency).sum(axis=(1, 2))
    a = comb(contingency.sum(axis=2)).sum(axis=1)
    b = comb(contingency.sum(axis=1)).sum(axis=1)
    expected = a * b / np.where(n > 1, comb(n), np.nan)
    top = (a + b) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top == expected, 1.0, (index - expected) / (top - expected))


def _structural(X, records, W, config: StructuralConfig) -> MetricDraws:
    labels = cluster_layer(np.asarray(X), config).labels
    truth = np.unique(label_sets(records)["MFT15"], return_inverse=True)[1]
    keep = labels >= 0
    clusters = np.unique(labels, return_inverse=True)[1]
    t, k = truth.max() + 1, clusters.max() + 1
    cell = sparse.csr_matrix(
        (keep.astype(float), (np.arange(len(truth)), truth * k + clusters)),
        shape=(len(truth), t * k),
    )
    full = np.asarray(cell.sum(axis=0)).reshape(1, t, k)
    estimate = float(_ari(full)[0]) if keep.sum() > 1 else float("nan")
    values = _ari(np.asarray((cell.T @ W.T).T).reshape(len(W), t, k))
    noise = float(np.mean(~keep))
    return MetricDraws("structural", estimate, values, {"noise_ratio": noise})


def _dimensional(X, records, W, config: DimensionalConfig) -> MetricDraws:
    fit = fit_ridge_probe(X, records.vectors, config, seed=config.seed)
    y, p = fit.y_true, fit.y_pred
    varies = np.ptp(y, axis=0) > 0

    def r2(w: np.ndarray) -> np.ndarray:
        total = w.sum(axis=1, keepdims=True)
        mean = (w @ y) / total
        sse = w @ (y - p) ** 2
        sst = w @ y**2 - total * mean**2
        with np.errstate(invalid="ignore", divide="ignore"):
            per_dim = 1 - sse / sst
        per_dim[:, ~varies] = np.nan
        return np.nanmean(np.where(sst > 0, per_dim, np.nan), axis=1)

    estimate = float(r2(np.ones((1, len(y))))[0])
    return MetricDraws("dimensional", estimate, r2(W), {"alpha": fit.alpha})


def metric_draws(
    X: np.ndarray,
    records: MoralRecords,
    draws: np.ndarray,
    which: Sequence[str],
    seed: int = 0,
    structural: StructuralConfig | None = None,
    dimensional: DimensionalConfig | None = None,
) -> dict[str, MetricDraws]:
    """Each diagnostic of ``which`` on the vectors ``X`` (rows = ``records``): its headline on
    all records and on each of ``draws`` (:func:`record_draws`); see the module docstring.
    ``seed`` fixes the gradient's prototype halves (as the diagnostic's ``seed``)."""
    X = np.asarray(X)
    if len(X) != len(records):
        raise ValueError(f"X has {len(X)} rows but records has {len(records)}")
    W = _weights(draws, len(records))
    out = {}
    for name in applicable(records, which):
        if name == "categorical":
            out[name] = _categorical(X, records, W)
        elif name == "gradient":
            out[name] = _gradient(X, records, draws, seed)
        elif name == "structural":
            out[name] = _structural(X, records, W, structural or StructuralConfig(seed=seed))
        elif name == "dimensional":
            config = dimensional or DimensionalConfig(seed=seed, probes=("ridge_cv",))
            out[name] = _dimensional(X, records, W, config)
        else:
            raise ValueError(f"unknown diagnostic {name!r}; expected one of {list(EFFECT_METRICS)}")
    return out
