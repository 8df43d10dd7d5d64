"""Markdown pieces shared by the generated pages (claims table, findings at a glance)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def table_row(cells: Iterable[object]) -> str:
    """One Markdown table row; a ``|`` inside a cell is escaped so it cannot split the cell."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def chapter_link(chapter: str, executed: Path) -> str:
    """``ch. NN``, linked to the executed notebook when the book publishes it; "—" for none.

    The link is relative to the book's source folder (where the generated tables are included).
    """
    if not chapter:
        return "—"
    where = f"ch. {chapter.split('_', 1)[0]}"
    if (executed / f"{chapter}.ipynb").exists():
        where = f"[{where}](_executed/{chapter}.ipynb)"
    return where
