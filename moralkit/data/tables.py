"""Reading local CSV/TSV files into pandas through the ``datasets`` library (Arrow-backed).

The Arrow copy ``datasets`` makes lives in ``$MORALKIT_CACHE/hf-datasets``. Every column is
read as text and converted explicitly afterwards, so a stray value gives a
clear error naming the column and the file instead of a silent type guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.data.fetch import default_cache_dir


def read_columns(path: str | Path, sep: str = ",") -> list[str]:
    """The header of a CSV/TSV file."""
    return list(pd.read_csv(path, sep=sep, nrows=0).columns)


def read_table(
    path: str | Path, columns: Sequence[str], sep: str = ",", label: str | None = None
) -> pd.DataFrame:
    """Read ``columns`` of a local CSV/TSV with ``datasets``, as strings (missing = NA).

    ``label`` names the file in error messages (default: the path). A required column that
    the header lacks raises ``ValueError`` naming the column and the file.
    """
    path = Path(path)
    label = label or str(path)
    header = read_columns(path, sep=sep)
    missing = [c for c in columns if c not in header]
    if missing:
        raise ValueError(
            f"file {label} lacks required column(s) {missing}; its columns are {header}"
        )
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
            cache_dir=str(default_cache_dir() / "hf-datasets"),
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
