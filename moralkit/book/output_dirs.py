"""Output folders moralkit may clear, and the refusal to touch any other.

A chapter's output folder is emptied before each run so that stale figures never survive into
a new page. Only folders moralkit made are emptied: each carries the marker file
``.moralkit-output``. A folder that exists, holds files and has no marker belongs to the user:
it is refused, never deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from moralkit.book.layout import RUN_RECORD
from moralkit.notebooks import OUTPUT_MARKER


class OutputFolderError(ValueError):
    """An output folder moralkit did not write (it is left untouched)."""


def is_moralkit_output(folder: Path) -> bool:
    """Whether moralkit wrote ``folder``: it has the marker, or (older builds) a run record."""
    if (folder / OUTPUT_MARKER).is_file():
        return True
    record = folder / RUN_RECORD
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"chapter", "source_sha", "status"} <= set(data)


def prepare_output_dir(folder: str | Path) -> Path:
    """An empty output folder at ``folder``, marked as moralkit's.

    A missing or empty folder is created; one moralkit wrote before is emptied; any other
    non-empty folder raises :class:`OutputFolderError` and nothing is changed.
    """
    folder = Path(folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"output folder {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not is_moralkit_output(folder):
            raise OutputFolderError(
                f"output folder {folder} already holds files that moralkit did not write "
                f"(no {OUTPUT_MARKER} marker); choose a new or empty folder with -o"
            )
        shutil.rmtree(folder)  # our own earlier run: stale figures must not survive
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OUTPUT_MARKER).write_text(
        "Written by moralkit; moralkit empties this folder before it runs the chapter again.\n",
        encoding="utf-8",
    )
    return folder


def remove_moralkit_output(folder: Path) -> bool:
    """Delete ``folder`` if moralkit wrote it; returns whether it did."""
    if folder.is_dir() and is_moralkit_output(folder):
        shutil.rmtree(folder)
        return True
    return False
