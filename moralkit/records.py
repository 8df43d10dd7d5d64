"""The record table: one typed object for the moral ground truth.

(paper §1; book: Methods › Data, methods/data.md.)

Every chapter works from a :class:`MoralRecords`: one row per (text, foundation) record,
the unit the paper calls a "moral vector" after exploding multi-foundation rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.foundations import DIMENSIONS, FOUNDATIONS, POLES

#: Columns every record table has, with their dtypes. The ten ``DIMENSIONS`` columns
#: hold the 10-d moral vector.
RECORD_COLUMNS: dict[str, str] = {
    "record_id": "string",  # unique per (source row, foundation)
    "source_id": "string",  # the source row (a Social-Chem RoT, a MoralStrength word)
    "source": "string",  # "socialchem", "socialchem-subset", "moralstrength", ...
    "text": "string",  # what the model reads inside the prompt template
    "foundation": "string",  # the record's (sampled) foundation, one of FOUNDATIONS
    "pole": "string",  # virtue | vice | neutral
    "category": "string",  # DIMENSIONS entry for polar records, "neutral" otherwise
    "typicality": "float64",  # non-zero value of the vector on this record's category
    "is_prototype": "bool",  # by the ground truth's prototype rule (moralkit.data.prototypes)
    "stratum": "string",  # virtue, virtue_typical, vice, vice_typical, neutral
    "split": "string",  # train | val | test
}
for _d in DIMENSIONS:
    RECORD_COLUMNS[_d] = "float64"


@dataclass
class MoralRecords:
    """A validated table of moral records plus where it came from.

    ``table`` has the :data:`RECORD_COLUMNS` first, then any further columns it was given (a
    user's ground-truth file keeps its own columns). ``provenance`` carries the source name,
    file checksums and any counts a chapter should report.
    """

    table: pd.DataFrame
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in RECORD_COLUMNS if c not in self.table.columns]
        if missing:
            raise ValueError(f"record table lacks columns {missing}")
        extra = [c for c in self.table.columns if c not in RECORD_COLUMNS]
        self.table = self.table[[*RECORD_COLUMNS, *extra]].astype(RECORD_COLUMNS)
        self.table = self.table.reset_index(drop=True)
        bad_f = set(self.table["foundation"]) - set(FOUNDATIONS)
        bad_p = set(self.table["pole"]) - set(POLES)
        if bad_f or bad_p:
            raise ValueError(f"unknown foundations {bad_f} or poles {bad_p} in record table")

    def __len__(self) -> int:
        return len(self.table)

    @property
    def has_typicality(self) -> bool:
        """False for ground truths without graded typicality (dictionaries such as MFD 2.0).

        There every record is a prototype at typicality 1.0, so an analysis that correlates
        with typicality (the gradient diagnostic) does not apply.
        """
        return bool(self.provenance.get("has_typicality", True))

    @property
    def texts(self) -> list[str]:
        return self.table["text"].tolist()

    @property
    def vectors(self) -> np.ndarray:
        """The (n, 10) moral vectors in :data:`DIMENSIONS` order."""
        return self.table[list(DIMENSIONS)].to_numpy(dtype=np.float64)

    def where(self, mask: pd.Series | np.ndarray) -> MoralRecords:
        """The records selected by a boolean mask, with the same provenance."""
        return MoralRecords(self.table[np.asarray(mask, dtype=bool)], dict(self.provenance))

    def counts(self) -> pd.DataFrame:
        """Record counts per foundation x pole x typicality (a tidy table)."""
        return (
            self.table.groupby(["foundation", "pole", "typicality"], observed=True)
            .size()
            .rename("records")
            .reset_index()
        )

    def to_csv(self, path: str | Path) -> Path:
        """Write the table as CSV atomically (temp file, then rename)."""
        from moralkit.io import atomic_write_csv

        return atomic_write_csv(self.table, path)
