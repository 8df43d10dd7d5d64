"""Which records are a category's prototypes: the paper's rule, and the rule for lexicons.

Prototypes are the most typical members of a category; their mean representation is the
category's centre in every diagnostic (paper §1.3, §2.2; book: Methods › Ground truths,
methods/ground-truths.md). Three rules, one per kind of ground truth (:data:`PROTOTYPE_RULES`):

- ``"paper"`` (Social-Chem-101, exactly as the paper): typicality 1.0 (judgment ±2 with full
  agreement); a category with none has no centre.
- ``"lexicon"`` (MoralStrength, eMFD): a category's prototypes are its records at or above the
  **highest typicality stratum that, pooled with the strata above it, holds at least**
  :data:`MIN_PROTOTYPES` **records**: the top stratum when it is big enough, otherwise the
  next stratum down is pooled in, and so on. A lexicon's top stratum is often a handful of
  words (MoralStrength has 6 authority prototypes at 1.0 and no cheating word above 0.5), and
  a centre averaged over a handful of words is one word's quirks; 20 keeps the standard error
  of the mean below a quarter of one word's spread and is below every lexicon category's size
  here, so the rule never makes a whole category prototypical. A category smaller than that
  has all its polar records as prototypes.
- ``"all"`` (dictionaries without typicality, MFD 2.0 and the original MFD): every polar
  record is a prototype.

The per-category thresholds go into the records' provenance (``prototype_rule``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from moralkit.foundations import DIMENSIONS, PROTOTYPE_TYPICALITY

PROTOTYPE_RULES: tuple[str, ...] = ("paper", "lexicon", "all")
MIN_PROTOTYPES = 20


def prototype_thresholds(table: pd.DataFrame, min_count: int = MIN_PROTOTYPES) -> dict[str, float]:
    """Per category, the lowest typicality a prototype may have under the ``lexicon`` rule.

    Categories without polar records are absent.
    """
    polar = table[table["pole"] != "neutral"]
    thresholds = {}
    for category, typicality in polar.groupby("category")["typicality"]:
        counts = typicality.value_counts().sort_index(ascending=False)
        pooled = counts.cumsum()
        enough = pooled[pooled >= min_count]
        thresholds[str(category)] = float(enough.index[0] if len(enough) else counts.index[-1])
    return thresholds


def assign_prototypes(
    table: pd.DataFrame, rule: str, min_count: int = MIN_PROTOTYPES
) -> tuple[pd.DataFrame, dict]:
    """Set ``is_prototype`` and ``stratum`` of a record table by ``rule``; return its summary.

    The summary (for provenance) holds the rule, the minimum count and, per category, the
    threshold and the number of prototypes.
    """
    if rule not in PROTOTYPE_RULES:
        raise ValueError(f"unknown prototype rule {rule!r}; valid rules: {list(PROTOTYPE_RULES)}")
    polar = (table["pole"] != "neutral").to_numpy()
    typicality = table["typicality"].to_numpy(dtype=np.float64)
    if rule == "paper":
        thresholds = {c: PROTOTYPE_TYPICALITY for c in DIMENSIONS}
    elif rule == "lexicon":
        thresholds = prototype_thresholds(table, min_count)
    else:
        thresholds = {c: 0.0 for c in DIMENSIONS}
    floor = table["category"].map(thresholds).astype("float64").fillna(np.inf).to_numpy()
    is_prototype = polar & (typicality >= floor - 1e-9)
    table = table.assign(is_prototype=is_prototype)
    table["stratum"] = np.where(is_prototype, table["pole"] + "_typical", table["pole"])
    counts = table.loc[is_prototype, "category"].value_counts()
    summary = {
        "rule": rule,
        "min_count": min_count if rule == "lexicon" else None,
        "categories": {
            c: {"threshold": thresholds.get(c), "prototypes": int(counts.get(c, 0))}
            for c in DIMENSIONS
        },
    }
    return table, summary
