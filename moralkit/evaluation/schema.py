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

Extra columns are kept. Empty texts and labels other than 0/1 are errors that name the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

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


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a benchmark file by its extension (csv, tsv, jsonl, json, parquet)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    if suffix == ".tsv":
        return pd.read_csv(path, sep="\t", keep_default_na=False)
    if suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    if suffix == ".json":
        return pd.read_json(path)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    raise ValueError(
        f"benchmark file {path}: unknown extension {suffix!r}; use csv, tsv, jsonl, json or parquet"
    )


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


def load_benchmark(source: str | Path | pd.DataFrame, name: str | None = None) -> Benchmark:
    """A :class:`Benchmark` from a DataFrame or a file, validated against its schema."""
    if isinstance(source, pd.DataFrame):
        table, where = source.copy(), name or "benchmark DataFrame"
    else:
        table, where = read_table(source), str(source)
    schema = detect_schema(table, where)
    table = table.reset_index(drop=True)
    if "id" not in table.columns:
        table.insert(0, "id", [str(i) for i in range(len(table))])
    table["id"] = table["id"].astype(str)
    if schema == PAIRED:
        if "context" not in table.columns:
            table["context"] = ""
        table["context"] = table["context"].fillna("").astype(str)
        text_cols = ["acceptable", "unacceptable"]
    else:
        text_cols = ["text"]
        labels = pd.to_numeric(table["label"], errors="coerce")
        if labels.isna().any() or not labels.isin([0, 1]).all():
            raise ValueError(f"{where}: column 'label' must hold only 0 and 1")
        table["label"] = labels.astype(int)
    for col in text_cols:
        blank = table[col].isna() | (table[col].astype(str).str.strip() == "")
        if blank.any():
            raise ValueError(f"{where}: column {col!r} is empty in {int(blank.sum())} row(s)")
        table[col] = table[col].astype(str)
    if table.empty:
        raise ValueError(f"{where}: no rows")
    label = name or (Path(source).stem if not isinstance(source, pd.DataFrame) else "custom")
    return Benchmark(name=label, schema=schema, table=table)
