"""Bring your own benchmark: the two table schemas the behavioural measures accept.

(book: Methods › Evaluation, methods/evaluation.md.) A benchmark is a table, given as a
``pandas.DataFrame`` or a file path (``.csv``, ``.tsv``, ``.jsonl``, ``.json``, ``.parquet``),
in one of two schemas, told apart by their columns:

**labelled** — one statement per row, scored zero-shot by the model's answer to a yes/no
question (``BehaviourConfig.question_template``):

============  ========  =====================================================
column        type      meaning
============  ========  =====================================================
``text``      str       the scenario or statement
``label``     0/1       1 = morally wrong / unacceptable, 0 = acceptable
``id``        str       optional; row number when absent
============  ========  =====================================================

**paired** — two continuations of one context; the model "prefers" the one with the higher
conditional log-likelihood:

================  ====  =================================================
column            type  meaning
================  ====  =================================================
``acceptable``    str   the moral / acceptable continuation
``unacceptable``  str   the immoral / unacceptable continuation
``context``       str   optional; text both continuations follow ("" when absent)
``id``            str   optional; row number when absent
================  ====  =================================================

Extra columns are kept. A missing value where one is needed (an empty cell, ``NA``, ``N/A``,
``NaN``, ``null``), a label other than 0/1, and an empty or non-UTF-8 file are errors that name
the file, the row and the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.data.benchmarks import benchmark_files
from moralkit.data.user_tables import (
    UserFileError,
    UserTable,
    frame_table,
    is_missing,
    read_user_table,
)
from moralkit.io import sha256_of

LABELLED = "labelled"
PAIRED = "paired"
SCHEMAS = {LABELLED: ("text", "label"), PAIRED: ("acceptable", "unacceptable")}


@dataclass(frozen=True)
class Benchmark:
    """A validated benchmark table: its ``name``, ``schema`` (labelled | paired) and rows."""

    name: str
    schema: str
    table: pd.DataFrame

    def __len__(self) -> int:
        return len(self.table)


def _user_table(path: str | Path) -> UserTable:
    """A benchmark file as text cells (csv, tsv, jsonl, parquet; a .json array too)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    if path.suffix.lower() != ".json":
        return read_user_table(path)
    try:
        frame = pd.read_json(path)
    except ValueError as err:
        raise UserFileError(f"benchmark file {path} is not a JSON table: {err}") from None
    return UserTable(path.resolve(), "json", frame_table(frame, "").cells, sha256_of(path))


def read_table(path: str | Path) -> pd.DataFrame:
    """A benchmark file's cells as text ("" where the file has no value), read by extension
    (csv, tsv, jsonl, json, parquet); an empty, non-UTF-8 or unparsable file names itself."""
    return _user_table(path).cells


def detect_schema(table: pd.DataFrame, where: str = "benchmark") -> str:
    """``"labelled"`` or ``"paired"`` from the columns; ValueError naming what is missing."""
    found = [name for name, cols in SCHEMAS.items() if set(cols) <= set(table.columns)]
    if len(found) != 1:
        raise ValueError(
            f"{where}: cannot tell its schema from columns {list(table.columns)}; a labelled "
            "benchmark needs 'text' and 'label', a paired one 'acceptable' and 'unacceptable' "
            "(and optionally 'context')"
        )
    return found[0]


def _first(cells: UserTable, values: pd.Series, bad: pd.Series, column: str, problem: str) -> None:
    """Raise naming the table, the first row where ``bad`` holds, ``column`` and its value."""
    rows = np.flatnonzero(bad.to_numpy(dtype=bool))
    if len(rows):
        more = f" ({len(rows)} row(s) in all)" if len(rows) > 1 else ""
        value = values.iloc[int(rows[0])]
        raise cells.error(int(rows[0]), column, f"{value!r}: {problem}{more}")


def _validated(cells: UserTable, schema: str) -> dict[str, pd.Series]:
    """The schema's columns checked cell by cell (missing values, labels) and converted."""
    text = cells.cells
    required = ["acceptable", "unacceptable"] if schema == PAIRED else ["text"]
    out: dict[str, pd.Series] = {}
    for column in [*required, *(["id"] if "id" in text else [])]:
        values = text[column].astype(str)
        _first(cells, values, values.map(is_missing), column, "a value is required here")
        out[column] = values
    if schema == PAIRED:
        context = text["context"] if "context" in text else pd.Series([""] * len(text))
        marker = context.map(lambda x: bool(x.strip()) and is_missing(x))
        _first(cells, context, marker, "context", "a missing value; leave the cell empty for none")
        out["context"] = context.astype(str)
    else:
        label = text["label"]
        numbers = pd.to_numeric(label.where(~label.map(is_missing)), errors="coerce")
        _first(cells, label, ~numbers.isin([0, 1]), "label", "labels must be 0 or 1")
        out["label"] = numbers.astype(int)
    return out


def load_benchmark(source: str | Path | pd.DataFrame, name: str | None = None) -> Benchmark:
    """A :class:`Benchmark` from a DataFrame or a file, validated against its schema.

    A missing value where the schema needs one (an empty cell, ``NA``, ``N/A``, ``NaN``,
    ``null``), a label other than 0 and 1, an empty or non-UTF-8 file raise ``ValueError``
    naming the file (or ``name``), the row and the column.
    """
    if isinstance(source, pd.DataFrame):
        where = f"benchmark {name}" if name else "benchmark DataFrame"
        cells, table = frame_table(source, where), source.reset_index(drop=True)
    else:
        cells = _user_table(source)
        where, table = str(source), cells.cells.copy()
    schema = detect_schema(cells.cells, where)
    if cells.cells.empty:
        raise ValueError(f"{where}: no rows")
    table = table.copy()
    for column, values in _validated(cells, schema).items():
        table[column] = values.to_numpy()
    if "id" not in table.columns:
        table.insert(0, "id", [str(i) for i in range(len(table))])
    label = name or (Path(source).stem if not isinstance(source, pd.DataFrame) else "custom")
    return Benchmark(name=label, schema=schema, table=table)


#: the names of the built-in behavioural benchmarks (a user's file may not take them)
BUILT_IN = ("moral-stories", "ethics", "ethics-hard")


def user_benchmarks(paths: Sequence[str]) -> list[Benchmark]:
    """A user's benchmark files, validated (book: Methods › Evaluation), named by file stem."""
    benchmarks = [load_benchmark(path) for path in benchmark_files(list(paths))]
    names = [b.name for b in benchmarks]
    clash = sorted({n for n in names if names.count(n) > 1 or n in BUILT_IN})
    if clash:
        raise ValueError(
            f"benchmark files {list(paths)}: the name(s) {clash} are taken (by another file or a "
            f"built-in set: {', '.join(BUILT_IN)}); rename the file(s)"
        )
    return benchmarks
