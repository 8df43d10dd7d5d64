"""Training data for the SAEs: an unlabelled pool of moral and everyday texts, and the
cross-fitting folds of the labelled records (paper §4.1-4.2; book: Methods › SAE surgery,
methods/sae.md).

SAE pretraining needs no labels, so it reads only unlabelled texts
(:func:`moralkit.data.unlabelled.unlabelled_pool`: every offline moral and everyday text minus
every text of the ground truths the chapter scores). One pretrained SAE
therefore serves every fold of the cross-fitting: the labelled records are cut into folds
(:func:`crossfit_folds`), each fold's SAE is fine-tuned on the other folds, and every labelled
record is scored by an SAE that never saw it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from moralkit.records import MoralRecords

__all__ = [
    "TextBatch",
    "array_hash",
    "crossfit_folds",
    "fold_records",
    "holdout_split",
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


def _deal(groups: np.ndarray, strata: np.ndarray, n_parts: int, rng) -> np.ndarray:
    """Part id per group: within each stratum, groups shuffled and dealt round-robin from a
    random part."""
    part = np.empty(len(groups), dtype=np.int64)
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        part[members] = (np.arange(members.size) + rng.integers(n_parts)) % n_parts
    return part


def _text_groups(records: MoralRecords, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group of each row, stratum of each group): records sharing a text form one group (a
    word of two foundations is two records), whose stratum is its first record's category and
    prototype flag."""
    table = records.table.iloc[rows]
    _, first, groups = np.unique(
        table["text"].to_numpy(dtype=str), return_index=True, return_inverse=True
    )
    strata = (table["category"].astype(str) + "|" + table["is_prototype"].astype(str)).to_numpy()
    return groups, strata[first]


def crossfit_folds(records: MoralRecords, n_folds: int, seed: int = 0) -> np.ndarray:
    """Fold id (0 .. ``n_folds - 1``) of every record, stratified by category and prototype
    flag, with all records of one text in one fold (so no fold's SAE is fine-tuned on a text it
    is then scored on). Each stratum's texts are shuffled by ``seed`` and dealt round-robin, so
    every fold holds about 1 / ``n_folds`` of each category's prototypes."""
    if n_folds < 2:
        raise ValueError(f"n_folds={n_folds}; cross-fitting needs at least 2 folds")
    if records.table["text"].nunique() < n_folds:
        raise ValueError(f"{len(records)} records cannot fill n_folds={n_folds} folds")
    groups, strata = _text_groups(records, np.arange(len(records)))
    return _deal(groups, strata, n_folds, np.random.default_rng(seed))[groups]


def fold_records(
    records: MoralRecords, folds: np.ndarray, fold: int, val_fraction: float, seed: int = 0
) -> MoralRecords:
    """``records`` with their ``split`` column set for one fold of the cross-fitting: ``test``
    for the records of ``fold``; of the others' texts, a stratified ``val_fraction`` is ``val``
    (identification and early stopping) and the rest ``train`` (fine-tuning)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction={val_fraction}; expected a fraction in (0, 1)")
    folds = np.asarray(folds)
    if folds.shape != (len(records),):
        raise ValueError(f"folds has shape {folds.shape}; expected ({len(records)},)")
    split = np.where(folds == fold, "test", "train").astype(object)
    rest = np.flatnonzero(folds != fold)
    groups, strata = _text_groups(records, rest)
    n_parts = max(2, int(round(1 / val_fraction)))
    part = _deal(groups, strata, n_parts, np.random.default_rng([seed, fold]))
    split[rest[part[groups] == 0]] = "val"
    return MoralRecords(records.table.assign(split=split), dict(records.provenance))


def holdout_split(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) row indices of ``n`` unlabelled vectors: a seeded ``fraction`` held out
    (at least one row each side)."""
    if n < 2:
        raise ValueError(f"{n} unlabelled vectors cannot be split into train and validation")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, int(round(fraction * n))), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


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
