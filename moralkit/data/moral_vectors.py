"""From source rows to moral records: the 10-d vector, the id split, the explode step.

A *source table* (what a ground-truth reader returns) has one row per source item with
columns ``source_id``, ``text``, ``m_virtue``, ``m_vice`` and one boolean ``has_<foundation>``
column per foundation (the foundations the item is labelled with). This module turns it into
the record table of :class:`moralkit.records.MoralRecords` (paper §1.3-1.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from moralkit.foundations import DIMENSIONS, FOUNDATIONS, PROTOTYPE_TYPICALITY
from moralkit.records import RECORD_COLUMNS

#: Boolean columns of a source table marking the foundations an item is labelled with.
FOUNDATION_FLAGS: tuple[str, ...] = tuple(f"has_{f}" for f in FOUNDATIONS)
SOURCE_TABLE_COLUMNS: tuple[str, ...] = (
    "source_id",
    "text",
    "m_virtue",
    "m_vice",
    *FOUNDATION_FLAGS,
)
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class SourceItems:
    """What a ground-truth reader returns: the source table and the counts the provenance reports.

    ``raw_rows`` are the rows (or entries) read, ``cleaned_rows`` the distinct items kept, and
    ``dropped`` counts what was left out on the way, by reason.
    """

    items: pd.DataFrame
    raw_rows: int
    cleaned_rows: int
    dropped: dict[str, int] = field(default_factory=dict)


def count_summary(table: pd.DataFrame, built: SourceItems) -> dict:
    """The record counts a ground truth's provenance reports (rows read, records, per split
    and pole, prototypes, what was dropped)."""
    return {
        "raw_rows": int(built.raw_rows),
        "cleaned_rows": int(built.cleaned_rows),
        "expanded_records": int(len(table)),
        "by_split": {k: int(v) for k, v in table["split"].value_counts().sort_index().items()},
        "by_pole": {k: int(v) for k, v in table["pole"].value_counts().sort_index().items()},
        "by_split_pole": {
            f"{s}/{p}": int(v) for (s, p), v in table.groupby(["split", "pole"]).size().items()
        },
        "prototypes": int(table["is_prototype"].sum()),
        "dropped": dict(built.dropped),
    }


def pole_values(judgment: np.ndarray, agree: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(m_virtue, m_vice)`` from Social-Chem judgment (-2..2) and agreement (0..4).

    paper §1.3: v = judgment/2, w = agree/4, m_virtue = max(0, v)·w,
    m_vice = max(0, -v)·w. Judgment 0 or agreement 0 gives (0, 0): a neutral item.
    """
    v = np.asarray(judgment, dtype=np.float64) / 2.0
    w = np.asarray(agree, dtype=np.float64) / 4.0
    return np.maximum(0.0, v) * w, np.maximum(0.0, -v) * w


def split_by_id(ids: Sequence[str] | pd.Series, seed: int = 42) -> pd.Series:
    """80/10/10 train/val/test split made on unique ids (paper §1.4).

    The unique ids, in order of first appearance, are shuffled with
    ``numpy.random.RandomState(seed)`` (the same permutation as ``np.random.seed(seed);
    np.random.shuffle(ids)``); the first ``int(0.8 n)`` are train, the next ``int(0.1 n)``
    val, the rest test. Repeated ids get the same split. Returns one split name per input.
    """
    ids = pd.Series(ids, dtype="string").reset_index(drop=True)
    unique = pd.unique(ids.to_numpy())
    n = len(unique)
    shuffled = unique[np.random.RandomState(seed).permutation(n)]
    n_train, n_val = int(0.8 * n), int(0.1 * n)
    names = np.array(["test"] * n, dtype=object)
    names[:n_train] = "train"
    names[n_train : n_train + n_val] = "val"
    split_of = dict(zip(shuffled, names, strict=True))
    return ids.map(split_of).astype("string")


def explode_records(items: pd.DataFrame, source: str, split_seed: int = 42) -> pd.DataFrame:
    """One record per (item, listed foundation), with the 10-d vector and the split.

    paper §1.3-1.4: the vector is ``m_virtue`` on the virtue slot and ``m_vice`` on
    the vice slot of **every** foundation the item lists (0 elsewhere); the split is drawn
    on ``source_id`` before exploding (:func:`split_by_id`); each record's ``foundation`` is
    the one it was exploded on, ``record_id`` is ``"<source_id>:<foundation>"``.
    """
    missing = [c for c in SOURCE_TABLE_COLUMNS if c not in items.columns]
    if missing:
        raise ValueError(f"source table for {source!r} lacks columns {missing}")
    items = items.reset_index(drop=True)
    flags = items[list(FOUNDATION_FLAGS)].to_numpy(dtype=bool)  # (n, 5)
    m_virtue = items["m_virtue"].to_numpy(dtype=np.float64)
    m_vice = items["m_vice"].to_numpy(dtype=np.float64)
    if np.any((m_virtue > 0) & (m_vice > 0)):
        raise ValueError(f"source table for {source!r} has items with both poles non-zero")

    vectors = np.zeros((len(items), len(DIMENSIONS)))
    vectors[:, 0::2] = flags * m_virtue[:, None]  # virtue slots: even indices
    vectors[:, 1::2] = flags * m_vice[:, None]  # vice slots: odd indices
    split = split_by_id(items["source_id"], seed=split_seed).to_numpy()

    row, k = np.nonzero(flags)  # row-major: an item's records stay together, in FOUNDATIONS order
    foundation = np.asarray(FOUNDATIONS, dtype=object)[k]
    pole = np.where(m_virtue[row] > 0, "virtue", np.where(m_vice[row] > 0, "vice", "neutral"))
    typicality = np.round(np.maximum(m_virtue, m_vice)[row], 6)
    is_prototype = (pole != "neutral") & (typicality == PROTOTYPE_TYPICALITY)
    category = np.where(
        pole == "virtue",
        np.asarray(DIMENSIONS, dtype=object)[2 * k],
        np.where(pole == "vice", np.asarray(DIMENSIONS, dtype=object)[2 * k + 1], "neutral"),
    )
    stratum = np.where(is_prototype, np.char.add(pole.astype(str), "_typical"), pole)
    source_id = items["source_id"].to_numpy(dtype=object)[row]
    table = pd.DataFrame(
        {
            "record_id": [f"{s}:{f}" for s, f in zip(source_id, foundation, strict=True)],
            "source_id": source_id,
            "source": source,
            "text": items["text"].to_numpy(dtype=object)[row],
            "foundation": foundation,
            "pole": pole,
            "category": category,
            "typicality": typicality,
            "is_prototype": is_prototype,
            "stratum": stratum,
            "split": split[row],
        }
    )
    for j, dim in enumerate(DIMENSIONS):
        table[dim] = vectors[row, j]
    if table["record_id"].duplicated().any():
        dupes = table.loc[table["record_id"].duplicated(), "record_id"].head(3).tolist()
        raise ValueError(f"duplicate record ids in {source!r}, e.g. {dupes}")
    return table[list(RECORD_COLUMNS)]
