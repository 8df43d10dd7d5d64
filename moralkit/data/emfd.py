"""The extended Moral Foundations Dictionary (eMFD) as moral source items with both poles.

An offline ground truth in the paper's record schema (paper §1.3 applied to a lexicon; the
paper itself uses Social-Chem-101 only; book: Methods › Ground truths, methods/ground-truths.md).
``emfd_scoring.csv`` gives, for 3,270 words and each foundation, ``<foundation>_p`` (the share
of crowd coders who highlighted the word for that foundation when they read it) and
``<foundation>_sent`` (the mean sentiment, -1 to 1, of the passages it was highlighted in).

Mapping, per (word, foundation):

- a word **enters** a foundation where ``p >= EMFD_FLOOR`` (0.2: at least one coder in five
  singled it out for that foundation, about twice the median ``p`` of every foundation,
  0.085-0.108, so a word enters only where it is highlighted well above the background rate);
- its **pole** is the sign of ``<foundation>_sent`` (positive: virtue). A word that passes the
  floor with a sentiment of exactly 0 has no pole and does not enter that foundation;
- its **typicality** is ``p`` binned into six strata (:data:`EMFD_BINS`)::

      [0.20, 0.25) -> 0.125      [0.35, 0.40) -> 0.5
      [0.25, 0.30) -> 0.25       [0.40, 0.50) -> 0.75
      [0.30, 0.35) -> 0.375      [0.50, 1.00] -> 1.0   (at least half the coders)

  Steps of 0.05 because ``p`` is a ratio of small counts (finer steps would be noise), wider
  at the top like the paper's strata (0.125 apart below 0.5, then 0.75 and 1). The six bins
  are mapped in order onto the paper's stratum values so that subset, figures and diagnostics
  treat every ground truth alike; the values are ordinal labels, not probabilities.
- a word below the floor in **every** foundation is **neutral**: one record, under the
  foundation with its highest ``p`` (the first in paper order on ties).

Source ids are the word, so a word's records share one split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.data.moral_vectors import FOUNDATION_FLAGS, SourceItems
from moralkit.data.reading import parse_numbers, read_table
from moralkit.foundations import FOUNDATIONS, TYPICALITY_STRATA

EMFD_FLOOR = 0.2
#: Lower edges of ``p`` and the stratum value each bin maps to (see module docstring).
EMFD_BINS: tuple[tuple[float, float], ...] = tuple(
    zip((0.2, 0.25, 0.3, 0.35, 0.4, 0.5), TYPICALITY_STRATA, strict=True)
)
SOURCE_ID_PREFIX = "emfd"


def bin_probability(p: np.ndarray) -> np.ndarray:
    """eMFD ``p`` -> typicality stratum (0.0 below :data:`EMFD_FLOOR`); see module docstring."""
    p = np.asarray(p, dtype=np.float64)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("eMFD probabilities must lie in [0, 1]")
    edges = np.array([edge for edge, _ in EMFD_BINS])
    values = np.array([0.0] + [value for _, value in EMFD_BINS])
    return values[np.searchsorted(edges, np.round(p, 9), side="right")]


def _read_scores(path: Path, label: str) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    columns = ["word"] + [f"{f}_p" for f in FOUNDATIONS] + [f"{f}_sent" for f in FOUNDATIONS]
    raw = read_table(path, columns, label=label)
    raw = raw[raw["word"].notna()].reset_index(drop=True)
    p = np.column_stack([parse_numbers(raw[f"{f}_p"], f"{f}_p", label) for f in FOUNDATIONS])
    sent = np.column_stack(
        [parse_numbers(raw[f"{f}_sent"], f"{f}_sent", label) for f in FOUNDATIONS]
    )
    if np.isnan(p).any() or np.isnan(sent).any():
        raise ValueError(f"file {label} has empty probability or sentiment cells")
    words = raw["word"].astype(str).str.strip()
    if words.duplicated().any():
        raise ValueError(f"file {label} lists words twice, e.g. {words[words.duplicated()][:3]}")
    return words, p, sent


def emfd_items(path: Path, label: str = "emfd") -> SourceItems:
    """Read ``emfd_scoring.csv`` into a source table (one item per word x entered foundation)."""
    words, p, sent = _read_scores(path, f"{label} ({path})")
    typicality = bin_probability(p)  # (n, 5)
    passes = typicality > 0
    has_pole = passes & (sent != 0)
    row, k = np.nonzero(has_pole)
    polar = pd.DataFrame(
        {
            "word": words.to_numpy()[row],
            "k": k,
            "m_virtue": np.where(sent[row, k] > 0, typicality[row, k], 0.0),
            "m_vice": np.where(sent[row, k] < 0, typicality[row, k], 0.0),
        }
    )
    neutral_rows = np.flatnonzero(~passes.any(axis=1))
    neutral = pd.DataFrame(
        {
            "word": words.to_numpy()[neutral_rows],
            "k": p[neutral_rows].argmax(axis=1),
            "m_virtue": 0.0,
            "m_vice": 0.0,
        }
    )
    table = pd.concat([polar, neutral], ignore_index=True).sort_values(["word", "k"])
    items = pd.DataFrame(
        {
            "source_id": (SOURCE_ID_PREFIX + "_" + table["word"]).to_numpy(),
            "text": table["word"].to_numpy(),
            "m_virtue": table["m_virtue"].to_numpy(),
            "m_vice": table["m_vice"].to_numpy(),
        }
    )
    for j, flag in enumerate(FOUNDATION_FLAGS):
        items[flag] = table["k"].to_numpy() == j
    return SourceItems(
        items=items.reset_index(drop=True),
        raw_rows=len(words),
        cleaned_rows=int(table["word"].nunique()),
        dropped={"entries_without_sentiment": int((passes & (sent == 0)).sum())},
    )
