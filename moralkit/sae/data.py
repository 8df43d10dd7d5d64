"""Training data for the SAEs: labelled records plus unlabelled moral texts, and splits
(paper §4.1-4.2; book: Methods › SAE surgery, methods/sae.md).

SAE pretraining needs no labels, so it reads the labelled records' *train* split plus
unlabelled moral texts (:func:`moralkit.data.unlabelled.unlabelled_texts`), all through the
same cached extraction. Identification and fine-tuning read the labelled train/validation
splits only; the test split is kept for the final numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from moralkit.records import MoralRecords

__all__ = [
    "TextBatch",
    "array_hash",
    "pretraining_split",
    "records_hash",
    "split_index",
    "split_records",
]


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
