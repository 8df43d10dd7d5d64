"""A user's own data file (CSV, TSV, JSONL or Parquet) read as a table of text cells.

Every cell comes back as text (``""`` where the file has nothing), so that each schema
(:mod:`moralkit.data.user_ground_truth`) checks its columns itself and names the file, the row
and the column of a bad value. Empty, non-UTF-8 or unparsable files raise :class:`UserFileError`
naming the file and the problem; nothing is guessed (book: Methods › Ground truths,
methods/ground-truths.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moralkit.data.reading import DataFileError, check_text_file, read_text

#: File suffixes a user's table may have, and how each is read.
TABLE_FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
#: Cell values read as "no value" (case-insensitive); a required column may not hold them.
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "<na>"})


class UserFileError(ValueError):
    """A user's file is unreadable, or a cell breaks its schema (file, row and column named)."""


@dataclass(frozen=True)
class UserTable:
    """A user's file as text cells, with what an error message needs to point into it."""

    path: Path
    format: str
    cells: pd.DataFrame  # every column as str, "" for no value
    sha256: str
    label: str = ""  # how errors name the table ("file <path>" when empty)

    def where(self, row: int) -> str:
        """``row`` (0-based position in ``cells``) as the user finds it in the file."""
        if self.format in ("csv", "tsv"):
            return f"row {row + 1} (line {row + 2})"
        if self.format == "jsonl":
            return f"record {row + 1} (line {int(self.cells.index[row]) + 1})"
        return f"row {row + 1}"

    def error(self, row: int | None, column: str | None, problem: str) -> UserFileError:
        """An error naming this file and, where given, a row and a column."""
        place = [self.where(row)] if row is not None else []
        place += [f"column {column!r}"] if column else []
        prefix = f"{', '.join(place)}: " if place else ""
        return UserFileError(f"{self.label or f'file {self.path}'}: {prefix}{problem}")


def table_format(path: str | Path) -> str | None:
    """``"csv"``, ``"tsv"``, ``"jsonl"`` or ``"parquet"`` by the file's suffix (None: other)."""
    return TABLE_FORMATS.get(Path(path).suffix.lower())


def is_missing(value: str) -> bool:
    """Whether a text cell means "no value" (see :data:`MISSING_TOKENS`)."""
    return value.strip().lower() in MISSING_TOKENS


def cell_text(value: Any) -> str:
    """A JSON or Parquet value as the text a CSV would hold ("" for null or NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, ValueError) as err:
        raise UserFileError(f"file {path} is not a valid {'TSV' if sep == chr(9) else 'CSV'} "
                            f"table: {err}") from None  # fmt: skip


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows, lines = [], []
    for number, line in enumerate(read_text(path, str(path)).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserFileError(f"file {path}: line {number} is not JSON ({err.msg})") from None
        if not isinstance(value, dict):
            raise UserFileError(
                f"file {path}: line {number} holds a JSON {type(value).__name__}, not an "
                "object of column: value pairs"
            )
        rows.append({str(k): cell_text(v) for k, v in value.items()})
        lines.append(number - 1)
    table = pd.DataFrame(rows, index=lines, dtype=object).fillna("")
    return table.astype(str)


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError) as err:
        raise UserFileError(f"file {path} is not a readable Parquet file: {err}") from None
    return table.map(cell_text).astype(str) if len(table.columns) else table


def frame_table(frame: pd.DataFrame, label: str) -> UserTable:
    """A DataFrame as a :class:`UserTable` of text cells (errors name ``label`` and the row)."""
    cells = frame.reset_index(drop=True).map(cell_text) if len(frame.columns) else frame
    return UserTable(Path(label), "frame", cells.astype(str), "", label)


def read_user_table(path: str | Path) -> UserTable:
    """Read a user's CSV, TSV, JSONL or Parquet file as text cells (see module doc).

    Raises :class:`UserFileError` for a missing file, an unknown suffix, an empty or
    non-UTF-8 file, a file that does not parse, or one without data rows.
    """
    path = Path(path).expanduser().resolve()
    fmt = table_format(path)
    if fmt is None:
        raise UserFileError(
            f"file {path}: unknown table format {path.suffix!r}; use one of "
            f"{', '.join(sorted(TABLE_FORMATS))}"
        )
    if not path.is_file():
        raise UserFileError(f"file {path} does not exist (or is not a file)")
    try:
        if fmt == "parquet":
            from moralkit.io import sha256_of

            sha, cells = sha256_of(path), _read_parquet(path)
        else:
            sha = check_text_file(path, str(path)).sha256
            cells = _read_jsonl(path) if fmt == "jsonl" else _read_delimited(path, _SEP[fmt])
    except DataFileError as err:
        raise UserFileError(str(err)) from None
    if cells.empty:
        raise UserFileError(f"file {path} has no data rows")
    cells.columns = [str(c).strip() for c in cells.columns]
    duplicated = sorted({c for c in cells.columns if list(cells.columns).count(c) > 1})
    if duplicated:
        raise UserFileError(f"file {path}: column(s) {duplicated} appear more than once")
    return UserTable(path, fmt, cells, sha)


_SEP = {"csv": ",", "tsv": "\t"}
