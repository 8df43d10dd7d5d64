"""Reading local CSV/TSV and text files, checked, through the ``datasets`` library (Arrow-backed).

Every file is first scanned once (:func:`check_text_file`): it must be non-empty, valid UTF-8
and, for tables, hold at least one data row under its header. A file that fails gets a
:class:`DataFileError` naming the file and the problem, never a parser's internal error.

The Arrow copy ``datasets`` makes lives in ``$MORALKIT_CACHE/hf-datasets/<sha256>``: the folder
is keyed by the **content hash** of the file, because ``datasets`` itself keys local files by
path and modification time, so a file edited in place with the same size and mtime (``cp -p``,
``rsync -t``, ``tar x``) would otherwise be served from the old Arrow copy. Every column is read
as text and converted explicitly afterwards, so a stray value gives a clear error naming the
column and the file instead of a silent type guess.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.paths import cache_dir

_BLOCK = 1 << 20


class DataFileError(ValueError):
    """A data file is empty, has a header but no rows, or is not valid UTF-8."""


@dataclass(frozen=True)
class TextFileCheck:
    """What one scan of a text file found: its sha256 and its first line (the header)."""

    sha256: str
    first_line: str


def check_text_file(path: str | Path, label: str | None = None) -> TextFileCheck:
    """Scan ``path`` once: sha256 of the bytes, strict UTF-8 decoding, non-empty content.

    Raises :class:`DataFileError` naming ``label`` (default: the path) for an empty file, a
    file of blank lines only, or an invalid UTF-8 byte (its offset is given).
    """
    path = Path(path)
    label = label or str(path)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    head, offset = [], 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_BLOCK)
            final = not block
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError:
                raise _utf8_error(path, label) from None
            digest.update(block)
            offset += len(block)
            if sum(len(h) for h in head) < _BLOCK:
                head.append(text)
            if final:
                break
    if offset == 0:
        raise DataFileError(f"data file {label} is empty (0 bytes)")
    start = "".join(head).lstrip("\r\n\t ")
    if not start:
        raise DataFileError(f"data file {label} holds only blank lines ({offset} bytes)")
    return TextFileCheck(sha256=digest.hexdigest(), first_line=start.splitlines()[0])


def _utf8_error(path: Path, label: str) -> DataFileError:
    """The exact offset of the first invalid byte (an error path: reading it all is fine)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return DataFileError(
            f"data file {label} is not valid UTF-8: byte 0x{data[err.start]:02x} at offset "
            f"{err.start} ({err.reason}); re-save it as UTF-8"
        )
    return DataFileError(f"data file {label} is not valid UTF-8; re-save it as UTF-8")


def read_text(path: str | Path, label: str | None = None) -> str:
    """The UTF-8 text of a checked data file (see :func:`check_text_file`)."""
    check_text_file(path, label)
    return Path(path).read_text(encoding="utf-8-sig")


def read_columns(path: str | Path, sep: str = ",", label: str | None = None) -> list[str]:
    """The header of a CSV/TSV file (the file checked first: see :func:`check_text_file`)."""
    first = check_text_file(path, label).first_line
    return next(csv.reader(io.StringIO(first), delimiter=sep))


def _has_data_row(path: Path, sep: str) -> bool:
    rows = pd.read_csv(path, sep=sep, nrows=1, dtype=str, encoding="utf-8-sig")
    return len(rows) > 0


def read_table(
    path: str | Path, columns: Sequence[str], sep: str = ",", label: str | None = None
) -> pd.DataFrame:
    """Read ``columns`` of a local CSV/TSV with ``datasets``, as strings (missing = NA).

    ``label`` names the file in error messages (default: the path). A required column that
    the header lacks raises ``ValueError`` naming the column and the file; an empty,
    header-only or non-UTF-8 file raises :class:`DataFileError`.
    """
    path = Path(path)
    label = label or str(path)
    scan = check_text_file(path, label)
    header = next(csv.reader(io.StringIO(scan.first_line), delimiter=sep))
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(
            f"file {label} lacks required column(s) {missing}; its columns are {header}"
        )
    if not _has_data_row(path, sep):
        raise DataFileError(f"data file {label} has a header but no data rows")
    import datasets  # imported here: it costs ~1 s and cached record tables never need it

    features = datasets.Features({c: datasets.Value("string") for c in columns})
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # an Arrow conversion of a local file needs no bar
    try:
        table = datasets.load_dataset(
            "csv",
            data_files=[str(path)],
            split="train",
            sep=sep,
            usecols=list(columns),
            features=features,
            # keyed by content, never by path + mtime (see the module docstring)
            cache_dir=str(cache_dir("hf-datasets") / scan.sha256[:32]),
        )
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    return table.to_pandas()[list(columns)]


def parse_numbers(
    values: pd.Series, column: str, label: str, allowed: Sequence[float] | None = None
) -> pd.Series:
    """Text column -> float (NA stays NaN); non-numbers or values outside ``allowed`` raise."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    unparsable = values.notna() & numbers.isna()
    if unparsable.any():
        examples = values[unparsable].unique()[:5].tolist()
        raise ValueError(
            f"column {column!r} in file {label} holds non-numeric values, e.g. {examples}"
        )
    if allowed is not None:
        outside = numbers.notna() & ~numbers.isin(list(allowed))
        if outside.any():
            examples = np.unique(numbers[outside])[:5].tolist()
            raise ValueError(
                f"column {column!r} in file {label} holds values {examples} outside the "
                f"documented range {list(allowed)}"
            )
    return numbers
