"""What a chapter writes: its output folder, tables, figures and claims.

The folder is ``$MORALKIT_OUTPUT_DIR`` (set by ``moralkit book`` / ``moralkit run``) or
``./outputs/<chapter_id>``; tables go to ``<out>/tables/``, figures (PNG + their data as CSV) to
``<out>/figures/`` and measured claim values to ``<out>/claims.json``, judged by
``moralkit/claims.yaml``. Every file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt

from moralkit import provenance as prov
from moralkit.chapter.provenance import RunLog
from moralkit.claims import load_claims
from moralkit.display import SavedPath, link_markdown, show_markdown, show_png
from moralkit.io import atomic_path, atomic_write_csv
from moralkit.notebooks import FIGURE_DATA_KEY, OUTPUT_DIR_ENV, OUTPUT_MARKER
from moralkit.results import AnalysisResult, ClaimValue, claim_list

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def output_folder(chapter_id: str) -> Path:
    """The chapter's output folder, created; marked as moralkit's only when moralkit made it."""
    folder = Path(os.environ.get(OUTPUT_DIR_ENV) or Path("outputs") / chapter_id)
    fresh = not folder.exists() or not any(folder.iterdir())
    folder.mkdir(parents=True, exist_ok=True)
    if fresh:
        (folder / OUTPUT_MARKER).write_text("Written by moralkit.\n", encoding="utf-8")
    return folder


class Outputs:
    """A chapter's tables, figures and claims, each logged for the provenance block."""

    def __init__(
        self, chapter_id: str, params: Mapping[str, Any], output_dir: Path, log: RunLog
    ) -> None:
        self.chapter_id = chapter_id
        self.params = params
        self.output_dir = Path(output_dir)
        self.log = log

    def save_table(self, table: pd.DataFrame, name: str, show: bool = True) -> Path:
        """Write ``table`` as ``<out>/tables/<name>.csv`` and show a download link."""
        path = atomic_write_csv(table, self.output_dir / "tables" / f"{_stem(name)}.csv")
        self.log.outputs.append(str(path))
        if show:
            show_markdown(f"Table data: {link_markdown(path)}")
        return SavedPath(path)

    def save_result(self, result: AnalysisResult, prefix: str | None = None) -> dict[str, Path]:
        """Save every table of an analysis result (``<prefix>_<table>.csv``), with links.

        Returns the paths by table name.
        """
        return {
            name: self.save_table(table, f"{prefix}_{name}" if prefix else name)
            for name, table in result.tables.items()
        }

    def save_figure(
        self,
        fig: Figure,
        name: str,
        data: pd.DataFrame | None = None,
        dpi: int = 110,
    ) -> Path:
        """Save ``fig`` as ``<out>/figures/<name>.png`` (+ ``<name>.csv`` from ``data``).

        Displays the saved PNG exactly once (the figure is closed so the inline backend does
        not show it again), then a link to the CSV.
        """
        png = self.output_dir / "figures" / f"{_stem(name)}.png"
        with atomic_path(png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        self.log.outputs.append(str(png))
        csv = None
        if data is not None:
            csv = atomic_write_csv(data, png.with_suffix(".csv"))
            self.log.outputs.append(str(csv))
        show_png(png)
        if csv is not None:
            # tagged so the book build can fold the link into the figure caption
            show_markdown(f"Figure data: {link_markdown(csv)}", metadata={FIGURE_DATA_KEY: True})
        return SavedPath(png)

    def record_claim(self, claim_id: str, value: Any, note: str = "", **extra: Any) -> None:
        """Record a measured value for a claim of moralkit/claims.yaml (``<out>/claims.json``).

        ``extra`` holds fields the claim's check may judge and per-model details.
        """
        known = load_claims()
        if claim_id not in known:
            raise ValueError(f"unknown claim id {claim_id!r}; known: {', '.join(known)}")
        # run settings go with the value: claims.yaml `requires` judges comparability on them
        self.log.claims[claim_id] = {
            "value": value,
            "note": note,
            "chapter": self.chapter_id,
            "profile": self.params["profile"],
            "ground_truth": self.params.get("ground_truth"),
            "sample_scale": self.params.get("sample_scale"),
            "model": list(self.params.get("model") or []),
            **extra,
        }
        prov.write_json(self.log.claims, self.output_dir / "claims.json")

    def record_claims(self, claims: ClaimValue | Sequence[ClaimValue] | None) -> None:
        """Record what ``result.claim()`` returned: one :class:`ClaimValue`, a list, or None."""
        for claim in claim_list(claims):
            self.record_claim(claim.claim_id, claim.value, claim.note, **claim.fields())


def _stem(name: str) -> str:
    """A safe file stem: the name without a known extension, no path separators."""
    stem = Path(str(name)).name
    for ext in (".csv", ".png"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    if not stem or stem.startswith("."):
        raise ValueError(f"invalid output name {name!r}")
    return stem
