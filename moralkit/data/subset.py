"""The stratified diagnostic subset (paper-methods §1.5; the paper's 16,315 vectors)."""

from __future__ import annotations

import math

import numpy as np

from moralkit.foundations import FOUNDATIONS, PROTOTYPE_TYPICALITY, TYPICALITY_STRATA
from moralkit.records import MoralRecords

#: Per-foundation caps at scale 1 (paper-methods §1.5).
NON_TYPICAL_CAP = 300  # per non-typical typicality score, per pole
PROTOTYPE_CAP = 150  # typicality 1.0, per pole
NEUTRAL_CAP = 300


def scaled_cap(cap: int, scale: float) -> int:
    """``cap * scale`` rounded half up, at least 1 (so every non-empty stratum is sampled)."""
    return max(1, math.floor(cap * scale + 0.5))


def stratified_subset(records: MoralRecords, scale: float = 1.0, seed: int = 42) -> MoralRecords:
    """Balanced subset over foundation x pole x typicality (paper-methods §1.5).

    Per foundation (the record's own ``foundation``), drawn without replacement from all
    splits: up to ``300·scale`` records per non-typical score (0.125 ... 0.75) per pole, up to
    ``150·scale`` prototypes (typicality 1.0) per pole, up to ``300·scale`` neutral records.
    Caps are rounded half up and are at least 1 (:func:`scaled_cap`). Sampling uses one
    ``numpy.random.default_rng(seed)`` walked through the strata in a fixed order
    (foundations in paper order; virtue then vice; scores ascending; neutral last); the
    subset keeps the input's row order. At scale 1 the maxima are 3,600 per foundation and
    18,000 in all; sparse strata give fewer (the paper reports 16,315).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    table = records.table
    polar = table["pole"] != "neutral"
    odd = polar & ~table["typicality"].isin(TYPICALITY_STRATA)
    if odd.any():
        values = sorted(table.loc[odd, "typicality"].unique())[:5]
        raise ValueError(f"typicality values {values} are not strata {TYPICALITY_STRATA}")

    caps = {
        "non_typical": scaled_cap(NON_TYPICAL_CAP, scale),
        "prototype": scaled_cap(PROTOTYPE_CAP, scale),
        "neutral": scaled_cap(NEUTRAL_CAP, scale),
    }
    rng = np.random.default_rng(seed)
    foundation = table["foundation"].to_numpy()
    pole = table["pole"].to_numpy()
    typicality = table["typicality"].to_numpy()
    chosen: list[np.ndarray] = []

    def draw(mask: np.ndarray, cap: int) -> None:
        index = np.flatnonzero(mask)
        if len(index) > cap:
            index = rng.choice(index, size=cap, replace=False)
        chosen.append(index)

    for f in FOUNDATIONS:
        in_f = foundation == f
        for p in ("virtue", "vice"):
            for score in TYPICALITY_STRATA:
                cap = caps["prototype" if score == PROTOTYPE_TYPICALITY else "non_typical"]
                draw(in_f & (pole == p) & (typicality == score), cap)
        draw(in_f & (pole == "neutral"), caps["neutral"])

    keep = np.zeros(len(table), dtype=bool)
    keep[np.concatenate(chosen)] = True
    subset = records.where(keep)
    subset.provenance["subset"] = {
        "paper_section": "paper-methods §1.5",
        "scale": scale,
        "seed": seed,
        "caps_per_foundation": caps,
        "size": int(keep.sum()),
        "by_pole": {k: int(v) for k, v in subset.table["pole"].value_counts().items()},
        "by_stratum": {k: int(v) for k, v in subset.table["stratum"].value_counts().items()},
    }
    return subset
