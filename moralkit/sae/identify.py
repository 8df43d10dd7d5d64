"""Finding the SAE's moral features on the validation split (paper §4.3; book: Methods ›
SAE surgery, methods/sae.md).

For every feature ``i`` and moral dimension ``j``: Pearson ``r_ij`` between the feature's
activation and the records' moral vector. A feature is *monosemantic* when exactly one
``|r_ij|`` exceeds the threshold (or two, forming one foundation's virtue/vice pair), *weak*
when ``max|r| < weak_below``, *polysemantic* otherwise. The set that is fine-tuned is the union
of the strictly monosemantic features (``|r|max > threshold`` and ``> dominance x`` the
second-largest), the ``top_k`` positive features per dimension and the ``pair_k`` positive
features per pole (five virtue/vice pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from scipy.stats import t as student_t

from moralkit.foundations import DIMENSIONS, FOUNDATIONS
from moralkit.records import MoralRecords
from moralkit.sae.config import IdentifyConfig

__all__ = [
    "Identification",
    "feature_correlations",
    "identify_features",
    "pole_scores",
    "top_records",
]

VIRTUE_IDX = np.arange(0, len(DIMENSIONS), 2)
VICE_IDX = np.arange(1, len(DIMENSIONS), 2)


def pole_scores(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m_virtue, m_vice): each record's largest virtue and vice entry."""
    return vectors[:, VIRTUE_IDX].max(axis=1), vectors[:, VICE_IDX].max(axis=1)


def feature_correlations(Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Pearson r between every column of ``Z`` (n, F) and of ``Y`` (n, k): (F, k).

    Constant columns (dead features, absent dimensions) get r = 0.
    """
    Z = np.asarray(Z, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    Zc, Yc = Z - Z.mean(axis=0), Y - Y.mean(axis=0)
    zs, ys = np.sqrt((Zc**2).sum(axis=0)), np.sqrt((Yc**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (Zc.T @ Yc) / np.outer(zs, ys)
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class Identification:
    """The moral features of one SAE layer (see the module docstring)."""

    r: np.ndarray  # (d_sae, 10) Pearson with the moral dimensions
    types: np.ndarray  # monosemantic | polysemantic | weak, per feature
    strict: np.ndarray  # strictly monosemantic feature ids
    primary: np.ndarray  # primary dimension index of each strict feature
    selected: np.ndarray  # the fine-tuned feature ids (sorted)
    readout: np.ndarray  # (10, d_sae): top_k positive features per dim, |r|-weighted, sum 1
    pairs: list[tuple[np.ndarray, np.ndarray]]  # per foundation: (virtue ids, vice ids)
    scores: dict  # mono_ratio, proto_spearman, pair_cosine, n_distinguishing, layer_score
    r_poles: np.ndarray | None = None  # (d_sae, 2) Pearson with m_virtue and m_vice

    def feature_table(self) -> pd.DataFrame:
        """One row per feature: type, best dimension, max |r|, selected or not."""
        best = np.abs(self.r).argmax(axis=1)
        sel = np.zeros(len(self.r), dtype=bool)
        sel[self.selected] = True
        table = pd.DataFrame(
            {
                "feature": np.arange(len(self.r)),
                "type": self.types,
                "best_dimension": np.asarray(DIMENSIONS)[best],
                "r_best": self.r[np.arange(len(self.r)), best],
                "abs_r_max": np.abs(self.r).max(axis=1),
                "strict": np.isin(np.arange(len(self.r)), self.strict),
                "selected": sel,
            }
        )
        if self.r_poles is not None:
            table["r_virtue"], table["r_vice"] = self.r_poles[:, 0], self.r_poles[:, 1]
        return table


def _types(r: np.ndarray, config: IdentifyConfig) -> np.ndarray:
    above = np.abs(r) > config.threshold
    count = above.sum(axis=1)
    pair = np.zeros(len(r), dtype=bool)
    for k in range(len(FOUNDATIONS)):
        pair |= (count == 2) & above[:, 2 * k] & above[:, 2 * k + 1]
    types = np.full(len(r), "polysemantic", dtype=object)
    types[(count == 1) | pair] = "monosemantic"
    types[np.abs(r).max(axis=1) < config.weak_below] = "weak"
    return types


def _strict(r: np.ndarray, config: IdentifyConfig) -> tuple[np.ndarray, np.ndarray]:
    a = np.sort(np.abs(r), axis=1)
    top, second = a[:, -1], a[:, -2]
    ids = np.flatnonzero((top > config.threshold) & (top > config.dominance * second))
    return ids, np.abs(r[ids]).argmax(axis=1)


def _top_positive(col: np.ndarray, k: int, threshold: float) -> np.ndarray:
    ids = np.flatnonzero(col > threshold)
    return ids[np.argsort(-col[ids], kind="stable")][:k]


def _readout(r: np.ndarray, config: IdentifyConfig) -> np.ndarray:
    W = np.zeros((r.shape[1], r.shape[0]))
    for j in range(r.shape[1]):
        ids = _top_positive(r[:, j], config.top_k, config.threshold)
        if len(ids):
            W[j, ids] = np.abs(r[ids, j]) / np.abs(r[ids, j]).sum()
    return W


def _proto_spearman(Z: np.ndarray, Y: np.ndarray, r: np.ndarray, top: int) -> float:
    values = []
    for j in range(Y.shape[1]):
        pos = Y[:, j] > 0
        if pos.sum() < 3 or np.ptp(Y[pos, j]) == 0:
            continue
        for i in np.argsort(-r[:, j])[:top]:
            if np.ptp(Z[pos, i]) > 0:
                values.append(spearmanr(Z[pos, i], Y[pos, j]).statistic)
    return float(np.nanmean(values)) if values else float("nan")


def _pair_cosines(r: np.ndarray) -> np.ndarray:
    """Cosine between each foundation's virtue and vice correlation profiles (nan if empty)."""
    cos = np.full(len(FOUNDATIONS), np.nan)
    for k in range(len(FOUNDATIONS)):
        a, b = r[:, 2 * k], r[:, 2 * k + 1]
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        if denom > 0:
            cos[k] = float(a @ b / denom)
    return cos


def chance_mono_ratio(n: int, threshold: float = 0.1, k: int = 10) -> float:
    """Share of features typed monosemantic by chance: a feature unrelated to all ``k``
    dimensions, on ``n`` records, has exactly one |r| above ``threshold`` (independent
    dimensions assumed; Pearson r under the null via its t distribution)."""
    if n <= 3:
        return float("nan")
    t = threshold * np.sqrt((n - 2) / (1 - threshold**2))
    p = 2 * student_t.sf(t, n - 2)
    return float(k * p * (1 - p) ** (k - 1))


def identify_features(
    Z: np.ndarray, records: MoralRecords, config: IdentifyConfig | None = None
) -> Identification:
    """Type the features and pick the fine-tuned set from codes ``Z`` (n, d_sae) on records."""
    config = config or IdentifyConfig()
    Y = records.vectors
    if len(Z) != len(Y):
        raise ValueError(f"Z has {len(Z)} rows but records has {len(Y)}")
    r = feature_correlations(Z, Y)
    types = _types(r, config)
    strict, primary = _strict(r, config)
    pairs = [
        (
            _top_positive(r[:, 2 * k], config.pair_k, config.threshold),
            _top_positive(r[:, 2 * k + 1], config.pair_k, config.threshold),
        )
        for k in range(len(FOUNDATIONS))
    ]
    readout = _readout(r, config)
    parts = [strict, np.flatnonzero(readout.sum(axis=0) > 0)] + [p for ab in pairs for p in ab]
    selected = np.unique(np.concatenate(parts)).astype(np.int64)
    m_virtue, m_vice = pole_scores(Y)
    polar = (m_virtue > 0) ^ (m_vice > 0)
    r_pb = feature_correlations(Z[polar], (m_virtue[polar] > 0)[:, None].astype(float))[:, 0]
    n_dist = int((np.abs(r_pb) > config.threshold).sum())
    mono = float((types == "monosemantic").mean())
    proto = _proto_spearman(Z, Y, r, config.proto_top)
    pair_cos = _pair_cosines(r)
    cosine = float(np.nanmean(pair_cos)) if np.isfinite(pair_cos).any() else float("nan")
    score = 0.3 * mono + 0.3 * np.nan_to_num(proto) + 0.2 * (1 - np.nan_to_num(cosine))
    score += 0.2 * n_dist / Z.shape[1]
    scores = {
        "mono_ratio": mono,
        "mono_ratio_chance": chance_mono_ratio(len(Z), config.threshold, Y.shape[1]),
        "poly_ratio": float((types == "polysemantic").mean()),
        "weak_ratio": float((types == "weak").mean()),
        "n_strict": len(strict),
        "n_selected": len(selected),
        "selected_fraction": len(selected) / Z.shape[1],
        "proto_spearman": proto,
        "pair_cosine": cosine,
        "n_collapsed_pairs": int((pair_cos > config.collapse_cosine).sum()),
        "n_distinguishing": n_dist,
        "layer_score": float(score),
    }
    r_poles = feature_correlations(Z, np.stack([m_virtue, m_vice], axis=1))
    return Identification(r, types, strict, primary, selected, readout, pairs, scores, r_poles)


def top_records(
    Z: np.ndarray, records: MoralRecords, features: np.ndarray, k: int = 5
) -> pd.DataFrame:
    """The ``k`` records each feature fires on most (feature, rank, activation, text, category)."""
    rows = []
    for f in features:
        for rank, i in enumerate(np.argsort(-Z[:, f])[:k]):
            if Z[i, f] <= 0:
                break
            row = records.table.iloc[i]
            rows.append(
                {
                    "feature": int(f),
                    "rank": rank + 1,
                    "activation": float(Z[i, f]),
                    "text": row["text"],
                    "category": row["category"],
                    "typicality": float(row["typicality"]),
                }
            )
    return pd.DataFrame(rows)
