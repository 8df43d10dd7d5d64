"""MoralStrength lexicon v1.1 as moral source items with both poles.

An offline ground truth in the paper's record schema (paper §1.3 applied to a lexicon; a
departure from the paper, which uses Social-Chem-101 only; book: Methods › Ground truths,
methods/ground-truths.md). Each of the five
TSVs (``WORD``, ``EXPRESSED_MORAL``) rates words on a 1-9 scale from the foundation's vice
pole (1) to its virtue pole (9); MoralStrength's "purity" is the paper's sanctity.

Mapping, per (word, foundation):

- ``v = (rating - 5) / 4`` in [-1, 1]; the sign gives the pole (positive: virtue).
- ``|v| < 0.125`` (rating strictly between 4.5 and 5.5): neutral, all-zero vector.
- otherwise the typicality is ``|v|`` binned onto the paper's strata
  (:data:`TYPICALITY_BINS`)::

      [0.125, 0.25)  -> 0.125        [0.5,   0.75)  -> 0.5
      [0.25,  0.375) -> 0.25         [0.75,  0.875) -> 0.75
      [0.375, 0.5)   -> 0.375        [0.875, 1.0]   -> 1.0  (prototype)

The vector is that value on the foundation's virtue or vice slot and 0 elsewhere. Prototypes
follow the lexicon rule of :mod:`moralkit.data.prototypes` (the top stratum, pooled with the
next ones down while it holds fewer than 20 words). A word
rated in several files gives one record per file (its ratings differ per foundation, so
they are not merged); its source id is the word, so all its records share a split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.data.moral_vectors import FOUNDATION_FLAGS, SourceItems
from moralkit.data.reading import parse_numbers, read_table
from moralkit.foundations import FOUNDATIONS

#: Manifest names of the five lexicon files, per foundation.
MORALSTRENGTH_FILES: dict[str, str] = {
    "care": "moralstrength-care",
    "fairness": "moralstrength-fairness",
    "loyalty": "moralstrength-loyalty",
    "authority": "moralstrength-authority",
    "sanctity": "moralstrength-purity",
}
#: Lower edges of |v| and the typicality value each bin maps to (see module docstring).
TYPICALITY_BINS: tuple[tuple[float, float], ...] = (
    (0.125, 0.125),
    (0.25, 0.25),
    (0.375, 0.375),
    (0.5, 0.5),
    (0.75, 0.75),
    (0.875, 1.0),
)
NEUTRAL_BELOW = 0.125
SOURCE_ID_PREFIX = "moralstrength"


def bin_typicality(strength: np.ndarray) -> np.ndarray:
    """|v| in [0, 1] -> typicality stratum (0.0 for neutral, |v| < 0.125); see module doc."""
    strength = np.round(np.asarray(strength, dtype=np.float64), 9)  # 4.5/5.5 land on 0.125
    if np.any((strength < 0) | (strength > 1)):
        raise ValueError("MoralStrength |v| must lie in [0, 1]")
    edges = np.array([edge for edge, _ in TYPICALITY_BINS])
    values = np.array([0.0] + [value for _, value in TYPICALITY_BINS])
    return values[np.searchsorted(edges, strength, side="right")]


def moral_strength_items(paths: dict[str, Path]) -> SourceItems:
    """Read the five lexicon files (``{foundation: path}``) into one source table."""
    parts = []
    for foundation in FOUNDATIONS:
        path = paths[foundation]
        label = f"{MORALSTRENGTH_FILES[foundation]} ({path})"
        raw = read_table(path, ["WORD", "EXPRESSED_MORAL"], sep="\t", label=label)
        raw = raw[raw["WORD"].notna()]
        rating = parse_numbers(raw["EXPRESSED_MORAL"], "EXPRESSED_MORAL", label)
        if rating.isna().any() or ((rating < 1) | (rating > 9)).any():
            raise ValueError(f"column 'EXPRESSED_MORAL' in file {label} must hold ratings 1-9")
        v = ((rating - 5.0) / 4.0).to_numpy()
        typicality = bin_typicality(np.abs(v))
        words = raw["WORD"].astype(str).str.strip()
        part = pd.DataFrame(
            {
                "source_id": (SOURCE_ID_PREFIX + "_" + words).to_numpy(),
                "text": words.to_numpy(),
                "m_virtue": np.where(v > 0, typicality, 0.0),
                "m_vice": np.where(v < 0, typicality, 0.0),
            }
        )
        for flag, f in zip(FOUNDATION_FLAGS, FOUNDATIONS, strict=True):
            part[flag] = f == foundation
        parts.append(part)
    items = pd.concat(parts, ignore_index=True)
    return SourceItems(items=items, raw_rows=len(items), cleaned_rows=len(items))
