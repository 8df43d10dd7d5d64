"""The stratified diagnostic subset: the paper's 16,315 vectors.

(paper §1.5; book: Methods › Data, methods/data.md.)
"""

from __future__ import annotations

import math

import numpy as np

from moralkit.foundations import FOUNDATIONS, TYPICALITY_STRATA
from moralkit.records import MoralRecords

#: Per-foundation caps at scale 1 (paper §1.5).
NON_TYPICAL_CAP = 300  # per non-typical typicality score, per pole
PROTOTYPE_CAP = 150  # typicality 1.0, per pole
NEUTRAL_CAP = 300


def scaled_cap(cap: int, scale: float) -> int:
    """``cap * scale`` rounded half up, at least 1 (so every non-empty stratum is sampled)."""
    return max(1, math.floor(cap * scale + 0.5))


def stratified_subset(records: MoralRecords, scale: float = 1.0, seed: int = 42) -> MoralRecords:
    """Balanced subset over foundation x pole x typicality (paper §1.5; book: Methods › Data).

    Per foundation (the record's own ``foundation``), drawn without replacement from all
    splits: up to ``300·scale`` non-prototype records per typicality score per pole, up to
    ``150·scale`` prototypes per pole (one cell: for Social-Chem these are the typicality-1.0
    records as in the paper; for lexicons, whatever the prototype rule of
    :mod:`moralkit.data.prototypes` marked), up to ``300·scale`` neutral records.
    Caps are rounded half up and are at least 1 (:func:`scaled_cap`). Sampling uses one
    ``numpy.random.default_rng(seed)`` walked through the strata in a fixed order
    (foundations in paper order; virtue then vice; non-prototype scores ascending, then the
    prototypes; neutral last, the paper's order for Social-Chem); the
    subset keeps the input's row order. At scale 1 the maxima are 3,600 per foundation and
    18,000 in all; sparse strata give fewer (the paper reports 16,315).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    _check_strata(records)
    caps = {
        "non_typical": scaled_cap(NON_TYPICAL_CAP, scale),
        "prototype": scaled_cap(PROTOTYPE_CAP, scale),
        "neutral": scaled_cap(NEUTRAL_CAP, scale),
    }
    keep = np.zeros(len(records.table), dtype=bool)
    keep[_draw_strata(records, caps, np.random.default_rng(seed))] = True
    subset = records.where(keep)
    subset.provenance["subset"] = {
        "paper_section": "paper §1.5 (book: Methods › Data, methods/data.md)",
        "scale": scale,
        "seed": seed,
        "caps_per_foundation": caps,
        "size": int(keep.sum()),
        "by_pole": {k: int(v) for k, v in subset.table["pole"].value_counts().items()},
        "by_stratum": {k: int(v) for k, v in subset.table["stratum"].value_counts().items()},
    }
    return subset


def _check_strata(records: MoralRecords) -> None:
    """ValueError naming the typicality values of polar records that are not strata."""
    table = records.table
    polar = table["pole"] != "neutral"
    odd = polar & ~table["typicality"].isin(TYPICALITY_STRATA)
    if odd.any():
        values = sorted(table.loc[odd, "typicality"].unique())[:5]
        raise ValueError(f"typicality values {values} are not strata {TYPICALITY_STRATA}")


def _draw_strata(
    records: MoralRecords, caps: dict[str, int], rng: np.random.Generator
) -> np.ndarray:
    """Row indices drawn from every stratum, in the fixed order of :func:`stratified_subset`."""
    table = records.table
    foundation = table["foundation"].to_numpy()
    pole = table["pole"].to_numpy()
    typicality = table["typicality"].to_numpy()
    prototype = table["is_prototype"].to_numpy(dtype=bool)
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
                draw(in_f & (pole == p) & (typicality == score) & ~prototype, caps["non_typical"])
            draw(in_f & (pole == p) & prototype, caps["prototype"])
        draw(in_f & (pole == "neutral"), caps["neutral"])
    return np.concatenate(chosen)
