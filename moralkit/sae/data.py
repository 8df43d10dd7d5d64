"""Training data for the SAEs: labelled records plus unlabelled moral texts, and splits
(paper §4.1-4.2; book: Methods › SAE surgery, methods/sae.md).

SAE pretraining needs no labels, so it reads the labelled records' *train* split plus
unlabelled moral texts (Moral Stories norms and actions, ETHICS commonsense short scenarios,
Social-Chem-101 subset actions), all through the same cached extraction. Identification and
fine-tuning read the labelled train/validation splits only; the test split is kept for the
final numbers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moralkit.records import MoralRecords

__all__ = [
    "UNLABELLED_SOURCES",
    "TextBatch",
    "array_hash",
    "pretraining_split",
    "records_hash",
    "split_index",
    "split_records",
    "unlabelled_texts",
]

#: Manifest files the unlabelled pool is drawn from, and the columns holding texts.
UNLABELLED_SOURCES: dict[str, tuple[str, ...]] = {
    "moral-stories-dev": ("norm", "moral_action", "immoral_action"),
    "moral-stories-test": ("norm", "moral_action", "immoral_action"),
    "ethics-cm-test": ("input",),
    "social-chem-101-obligatory": ("action",),
    "social-chem-101-optional": ("action",),
}


def _read_source(name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    from moralkit.data import fetch

    path = fetch(name)
    if str(path).endswith(".jsonl"):
        table = pd.DataFrame([json.loads(line) for line in open(path, encoding="utf-8")])
    else:
        table = pd.read_csv(path)
    if "is_short" in table.columns:  # ETHICS long scenarios are Reddit posts: too long here
        table = table[table["is_short"].astype(str) == "True"]
    texts = [table[c].dropna().astype(str) for c in columns if c in table.columns]
    if not texts:
        raise ValueError(f"unlabelled source {name!r} has none of the columns {columns}")
    return pd.DataFrame({"text": pd.concat(texts, ignore_index=True), "source": name})


def unlabelled_texts(
    n: int, seed: int = 0, exclude: Iterable[str] = (), max_words: int = 40
) -> pd.DataFrame:
    """A seeded sample of ``n`` unique unlabelled moral texts (columns ``text``, ``source``).

    Texts in ``exclude`` (e.g. every labelled record's text) and texts longer than
    ``max_words`` words are left out. ``n = 0`` gives an empty table; ``n < 0`` all texts.
    """
    if n == 0:
        return pd.DataFrame({"text": pd.Series(dtype=str), "source": pd.Series(dtype=str)})
    pool = pd.concat([_read_source(k, v) for k, v in UNLABELLED_SOURCES.items()])
    pool["text"] = pool["text"].str.strip()
    pool = pool[(pool["text"].str.len() > 0) & (pool["text"].str.split().str.len() <= max_words)]
    pool = pool[~pool["text"].isin(set(exclude))].drop_duplicates("text")
    if 0 < n < len(pool):
        pool = pool.sample(n=n, random_state=seed)
    return pool.sort_values(["source", "text"]).reset_index(drop=True)


@dataclass(frozen=True)
class TextBatch:
    """Unlabelled texts in the shape ``Chapter.activations`` reads (``texts`` and ``len``)."""

    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def split_records(records: MoralRecords, split: str) -> MoralRecords:
    """The records of one split (train | val | test)."""
    return records.where(records.table["split"].to_numpy() == split)


def split_index(records: MoralRecords, split: str) -> np.ndarray:
    """Row indices of ``records`` in ``split`` (train | val | test)."""
    idx = np.flatnonzero(records.table["split"].to_numpy() == split)
    if len(idx) == 0:
        raise ValueError(f"the records have no {split!r} split rows")
    return idx


def pretraining_split(
    labelled: np.ndarray, records: MoralRecords, unlabelled: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) matrices for SAE pretraining: labelled train + unlabelled, labelled val."""
    if len(labelled) != len(records):
        raise ValueError(f"labelled has {len(labelled)} rows but records has {len(records)}")
    train = labelled[split_index(records, "train")]
    if unlabelled is not None and len(unlabelled):
        train = np.concatenate([train, np.asarray(unlabelled, dtype=np.float32)])
    return train.astype(np.float32), labelled[split_index(records, "val")].astype(np.float32)


def array_hash(*arrays: np.ndarray) -> str:
    """sha256 of arrays' shapes and float32 bytes (the data part of an SAE's cache key)."""
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a, dtype=np.float32)
        digest.update(str(a.shape).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def records_hash(records: MoralRecords) -> str:
    """sha256 of a record table's contents (texts, labels, typicality, splits): the labelled
    records' fingerprint in a fine-tuned SAE's key."""
    text = records.table.to_csv(index=False, float_format="%.17g")
    return hashlib.sha256(text.encode()).hexdigest()
