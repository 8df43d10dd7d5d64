"""Bring your own ground truth: a CSV, TSV, JSONL or Parquet file of moral records.

``-p ground_truth PATH`` (or ``ground_truth="path/to/file.csv"`` in a notebook) reads a file in
this record schema (book: Methods › Ground truths, methods/ground-truths.md, "Your own ground
truth"). One row is one text:

- ``text`` (required): what the model reads inside the prompt template;
- then **either** ``foundation`` (care, fairness, loyalty, authority, sanctity; Social-Chem's
  ``care-harm`` spelling works too) and ``pole`` (virtue, vice, neutral), with an optional
  ``typicality`` in (0, 1] for polar rows (empty or 0 for neutral ones);
- **or** the ten columns of the moral vector (``care, harm, fairness, cheating, loyalty,
  betrayal, authority, subversion, sanctity, degradation``), values in [0, 1]: each non-zero
  entry makes one record of that foundation and pole, its value the typicality; both poles of
  one foundation may not be non-zero; an all-zero row is a neutral record of the foundation
  named in its ``foundation`` cell;
- optional ``prototype`` (true/false), ``split`` (train/val/test; default the paper's 80/10/10
  split by id, seed 42) and ``id`` (rows sharing an id share a split; default the text);
- any other column is kept in the record table (one named like a record column, e.g.
  ``category``, is kept as ``user_category``).

Typicality is put on the paper's six strata by rounding down (below 0.125: 0.125), so the
stratified subset and every diagnostic run unchanged; the given value stays in
``typicality_given``. A file without typicality (``foundation``/``pole`` and no ``typicality``
column, or a vector of 0s and 1s only) has ``has_typicality = False``, as the MFD dictionaries:
analyses that need graded typicality report that they do not apply. Prototypes are the
``prototype`` column where there is one, else the lexicon rule (typicality) or every polar
record (no typicality) of :mod:`moralkit.data.prototypes`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.data.moral_vectors import SPLITS, SourceItems, count_summary, split_by_id
from moralkit.data.prototypes import assign_prototypes
from moralkit.data.user_tables import UserFileError, UserTable, is_missing, read_user_table
from moralkit.foundations import (
    DIMENSIONS,
    FOUNDATION_LABELS,
    FOUNDATIONS,
    POLES,
    TYPICALITY_STRATA,
)
from moralkit.records import RECORD_COLUMNS, MoralRecords

#: The columns the schema reads (every other column is kept as it is).
SCHEMA_COLUMNS: tuple[str, ...] = (
    "text",
    "foundation",
    "pole",
    "typicality",
    "prototype",
    "split",
    "id",
    *DIMENSIONS,
)
_TRUE, _FALSE = {"true", "1", "yes", "y"}, {"false", "0", "no", "n"}


def _bad(table: UserTable, mask: np.ndarray, column: str, problem: str) -> UserFileError | None:
    """An error for the first row where ``mask`` holds (None when none does)."""
    rows = np.flatnonzero(np.asarray(mask, dtype=bool))
    if not len(rows):
        return None
    more = f" ({len(rows) - 1} more row(s) like it)" if len(rows) > 1 else ""
    value = table.cells[column].iloc[rows[0]]
    return table.error(int(rows[0]), column, f"{value!r}: {problem}{more}")


def _check(table: UserTable, mask: np.ndarray, column: str, problem: str) -> None:
    error = _bad(table, mask, column, problem)
    if error is not None:
        raise error


def _text(table: UserTable, column: str) -> pd.Series:
    return table.cells[column].fillna("").astype(str).str.strip()


def _numbers(table: UserTable, column: str, required: np.ndarray) -> np.ndarray:
    """Column as floats (NaN where empty); a missing value where ``required`` is an error."""
    text = _text(table, column)
    missing = text.map(is_missing).to_numpy()
    _check(table, missing & required, column, "a value is required here")
    numbers = pd.to_numeric(text.where(~missing), errors="coerce").to_numpy(dtype=np.float64)
    _check(table, ~missing & np.isnan(numbers), column, "not a number")
    return numbers


def _foundations(table: UserTable, required: np.ndarray) -> np.ndarray:
    text = _text(table, "foundation").str.lower()
    text = text.map(lambda x: FOUNDATION_LABELS.get(x, x))
    missing = text.map(is_missing).to_numpy()
    _check(table, missing & required, "foundation", "a foundation is required here")
    unknown = ~missing & ~text.isin(FOUNDATIONS).to_numpy()
    _check(table, unknown, "foundation", f"not one of {', '.join(FOUNDATIONS)}")
    return text.to_numpy(dtype=object)


def _categorical_form(table: UserTable) -> pd.DataFrame:
    """``foundation`` + ``pole`` (+ ``typicality``): one record per row."""
    n = len(table.cells)
    foundation = _foundations(table, np.ones(n, dtype=bool))
    pole = _text(table, "pole").str.lower()
    _check(table, pole.map(is_missing).to_numpy(), "pole", "a pole is required")
    _check(table, ~pole.isin(POLES).to_numpy(), "pole", f"not one of {', '.join(POLES)}")
    polar = (pole != "neutral").to_numpy()
    if "typicality" in table.cells:
        value = _numbers(table, "typicality", polar)
        _check(table, polar & ~((value > 0) & (value <= 1)), "typicality", "must lie in (0, 1]")
        _check(table, ~polar & (np.nan_to_num(value) != 0), "typicality", "a neutral row has 0")
        value = np.where(polar, value, 0.0)
    else:
        value = np.where(polar, 1.0, 0.0)
    vectors = np.zeros((n, len(DIMENSIONS)))
    for i in np.flatnonzero(polar):
        k = FOUNDATIONS.index(foundation[i])
        vectors[i, 2 * k + (pole.iloc[i] == "vice")] = value[i]
    return _long(np.arange(n), foundation, pole.to_numpy(dtype=object), value, vectors)


def _vector_form(table: UserTable) -> pd.DataFrame:
    """The ten vector columns: one record per non-zero entry (all-zero rows: neutral)."""
    n = len(table.cells)
    required = np.ones(n, dtype=bool)
    vectors = np.column_stack([_numbers(table, d, required) for d in DIMENSIONS])
    for j, dim in enumerate(DIMENSIONS):
        _check(table, (vectors[:, j] < 0) | (vectors[:, j] > 1), dim, "must lie in [0, 1]")
    for k, f in enumerate(FOUNDATIONS):
        both = (vectors[:, 2 * k] > 0) & (vectors[:, 2 * k + 1] > 0)
        _check(table, both, DIMENSIONS[2 * k + 1], f"both poles of {f} are non-zero")
    neutral = ~(vectors > 0).any(axis=1)
    if "foundation" in table.cells:
        foundation = _foundations(table, neutral)
        named = ~_text(table, "foundation").map(is_missing).to_numpy()
        _check(table, named & ~neutral, "foundation", "read only on all-zero (neutral) rows")
    elif neutral.any():
        raise table.error(
            int(np.flatnonzero(neutral)[0]),
            None,
            "an all-zero vector is a neutral record and needs a 'foundation' column naming "
            "its foundation",
        )
    else:
        foundation = np.full(n, "", dtype=object)
    row, slot = np.nonzero(vectors > 0)
    parts = [
        _long(
            row,
            np.asarray(FOUNDATIONS, dtype=object)[slot // 2],
            np.where(slot % 2 == 0, "virtue", "vice").astype(object),
            vectors[row, slot],
            vectors[row],
        ),
        _long(
            np.flatnonzero(neutral),
            foundation[neutral],
            np.full(int(neutral.sum()), "neutral", dtype=object),
            np.zeros(int(neutral.sum())),
            vectors[neutral],
        ),
    ]
    return pd.concat(parts).sort_values("row", kind="stable", ignore_index=True)


def _long(row, foundation, pole, typicality, vectors) -> pd.DataFrame:
    long = pd.DataFrame(
        {"row": row, "foundation": foundation, "pole": pole, "typicality_given": typicality}
    )
    for j, dim in enumerate(DIMENSIONS):
        long[dim] = np.asarray(vectors, dtype=np.float64).reshape(len(long), -1)[:, j]
    return long


def stratum_of(typicality: np.ndarray) -> np.ndarray:
    """A typicality in (0, 1] rounded down onto the paper's strata (below 0.125: 0.125)."""
    strata = np.asarray(TYPICALITY_STRATA)
    index = np.searchsorted(strata, np.round(typicality, 9), side="right") - 1
    return strata[np.clip(index, 0, len(strata) - 1)]


def _form(table: UserTable) -> str:
    columns = set(table.cells.columns)
    vector = [d for d in DIMENSIONS if d in columns]
    if "text" not in columns:
        raise table.error(None, None, f"lacks the required column 'text'; its columns are "
                          f"{list(table.cells.columns)}")  # fmt: skip
    if vector and len(vector) < len(DIMENSIONS):
        missing = [d for d in DIMENSIONS if d not in columns]
        raise table.error(None, None, f"has vector columns {vector} but lacks {missing}")
    if vector and ("pole" in columns or "typicality" in columns):
        raise table.error(
            None,
            None,
            "give either 'foundation' and 'pole' (and 'typicality'), or the ten vector "
            "columns (whose values are the typicality), not both",
        )
    if not vector and not {"foundation", "pole"} <= columns:
        raise table.error(
            None,
            None,
            "needs 'foundation' and 'pole' columns, or the ten vector columns "
            f"({', '.join(DIMENSIONS)}); its columns are {list(table.cells.columns)}",
        )
    return "vector" if vector else "foundation-pole"


def _ids_and_splits(table: UserTable, long: pd.DataFrame, split_seed: int) -> None:
    """Set ``source_id``, ``record_id`` and ``split`` of ``long`` (in place), checked."""
    text = _text(table, "text")
    _check(table, text.map(is_missing).to_numpy(), "text", "a text is required")
    ids = _text(table, "id") if "id" in table.cells else text
    if "id" in table.cells:
        _check(table, ids.map(is_missing).to_numpy(), "id", "an id is required")
    long["text"] = text.to_numpy(dtype=object)[long["row"]]
    long["source_id"] = ids.to_numpy(dtype=object)[long["row"]]
    long["record_id"] = long["source_id"] + ":" + long["foundation"]
    dupes = long["record_id"].duplicated(keep=False).to_numpy()
    if dupes.any():
        first, second = long.loc[dupes, "row"].iloc[:2]
        column = "id" if "id" in table.cells else "text"
        raise table.error(int(second), column, f"the same {column} and foundation as "
                          f"{table.where(int(first))}; give each record once")  # fmt: skip
    if "split" not in table.cells:
        long["split"] = split_by_id(long["source_id"], seed=split_seed).to_numpy()
        return
    split = _text(table, "split").str.lower()
    _check(table, ~split.isin(SPLITS).to_numpy(), "split", f"not one of {', '.join(SPLITS)}")
    long["split"] = split.to_numpy(dtype=object)[long["row"]]
    mixed = long.groupby("source_id")["split"].transform("nunique").to_numpy() > 1
    if mixed.any():
        raise table.error(int(long.loc[mixed, "row"].iloc[0]), "split",
                          "rows with one id must share one split")  # fmt: skip


def _flags(table: UserTable, long: pd.DataFrame) -> np.ndarray:
    text = _text(table, "prototype").str.lower()
    _check(table, ~text.isin(_TRUE | _FALSE).to_numpy(), "prototype", "expected true or false")
    flag = text.isin(_TRUE).to_numpy()[long["row"]]
    neutral = (long["pole"] == "neutral").to_numpy()
    if (flag & neutral).any():
        raise table.error(int(long.loc[flag & neutral, "row"].iloc[0]), "prototype",
                          "a neutral record cannot be a prototype")  # fmt: skip
    return flag


def _extra_columns(table: UserTable) -> dict[str, str]:
    """Columns outside the schema, by the name they get in the record table."""
    extra = [c for c in table.cells.columns if c not in SCHEMA_COLUMNS]
    return {(f"user_{c}" if c in RECORD_COLUMNS else c): c for c in extra}


def _prototypes(table: UserTable, records: pd.DataFrame, has_typicality: bool) -> tuple:
    if "prototype" not in table.cells:
        return assign_prototypes(records, "lexicon" if has_typicality else "all")
    flag = _flags(table, records)
    records = records.assign(is_prototype=flag)
    records["stratum"] = np.where(flag, records["pole"] + "_typical", records["pole"])
    counts = records.loc[flag, "category"].value_counts()
    summary = {
        "rule": "file",
        "min_count": None,
        "categories": {
            c: {"threshold": None, "prototypes": int(counts.get(c, 0))} for c in DIMENSIONS
        },
    }
    return records, summary


def _record_table(table: UserTable, split_seed: int) -> tuple[pd.DataFrame, dict]:
    form = _form(table)
    long = _vector_form(table) if form == "vector" else _categorical_form(table)
    _ids_and_splits(table, long, split_seed)
    polar = (long["pole"] != "neutral").to_numpy()
    given = long["typicality_given"].to_numpy(dtype=np.float64)
    if form == "vector":
        has_typicality = len(np.unique(given[polar])) > 1
    else:
        has_typicality = "typicality" in table.cells
    long["typicality"] = np.where(polar, stratum_of(np.where(polar, given, 1.0)), 0.0)
    long["category"] = [
        DIMENSIONS[2 * FOUNDATIONS.index(f) + (p == "vice")] if p != "neutral" else "neutral"
        for f, p in zip(long["foundation"], long["pole"], strict=True)
    ]
    long["source"] = f"file:{table.path.name}"
    long["is_prototype"] = False
    long["stratum"] = long["pole"]
    records, rule = _prototypes(table, long, has_typicality)
    extra = _extra_columns(table)
    for name, column in extra.items():
        records[name] = table.cells[column].to_numpy(dtype=object)[records["row"]]
    details = {"schema": form, "has_typicality": bool(has_typicality), "prototype_rule": rule,
               "extra_columns": list(extra)}  # fmt: skip
    return records[[*RECORD_COLUMNS, "typicality_given", *extra]], details


def load_user_records(path: str | Path, split_seed: int = 42) -> MoralRecords:
    """All records of a user's ground-truth file (schema: see the module docstring).

    Errors name the file, the row and the column (:class:`UserFileError`). The provenance
    holds the file's absolute path as the ground truth, ``files`` ({path: sha256}), the
    schema found, ``has_typicality``, the prototype rule and the counts a chapter reports.
    """
    table = read_user_table(path)
    records, details = _record_table(table, split_seed)
    built = SourceItems(records, raw_rows=len(table.cells), cleaned_rows=len(table.cells))
    provenance = {
        "ground_truth": str(table.path),
        "paper_section": "a user's file (book: Methods › Ground truths, methods/ground-truths.md)",
        "files": {str(table.path): table.sha256},
        "format": table.format,
        "split_seed": split_seed if "split" not in table.cells else None,
        **details,
        "counts": count_summary(records, built),
    }
    return MoralRecords(records, provenance)
