"""Showing a chapter's outputs in a notebook (or printing them outside IPython)."""

from __future__ import annotations

import os
from pathlib import Path

from IPython import get_ipython
from IPython.display import Image, Markdown, display


def show_markdown(text: str, metadata: dict | None = None) -> None:
    """Display Markdown in a notebook (printed outside IPython)."""
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text), metadata=metadata)


def show_png(path: Path) -> None:
    """Display a saved PNG in a notebook (its path printed outside IPython)."""
    if get_ipython() is None:
        print(f"figure saved: {path}")
    else:
        display(Image(data=Path(path).read_bytes(), format="png"))


def link_markdown(path: Path, label: str | None = None) -> str:
    """A Markdown link to a local file, relative to the notebook's working directory.

    The book build turns a relative link to an existing non-page file into a download link
    (the file is copied into the site), and Jupyter opens it directly.
    """
    rel = os.path.relpath(Path(path).resolve(), Path.cwd().resolve())
    return f"[{label or Path(path).name}]({Path(rel).as_posix()})"


class SavedPath(type(Path())):  # type: ignore[misc]
    """A Path that displays as nothing in a notebook: the link was already shown."""

    def _ipython_display_(self) -> None:
        pass
