"""Unpublishing pages that do not belong in this build: other profile, failed run, gone source."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from moralkit.book.execution import ChapterRun
from moralkit.book.layout import REPO_BOOK, BookLayout
from moralkit.book.output_dirs import remove_moralkit_output
from moralkit.book.pages import read_chapter_status
from moralkit.book.sources import ChapterSource


def unpublish_stale(
    chapters: Sequence[ChapterSource], profile: str, layout: BookLayout = REPO_BOOK
) -> list[str]:
    """Unpublish executed pages whose source is gone, that failed, or ran under another profile.

    A book shows one profile. Output folders of deleted chapters are removed when moralkit
    wrote them. Returns the chapter ids dropped.
    """
    keep = {c.chapter_id for c in chapters}
    dropped = []
    for nb in sorted(layout.executed_dir.glob("*.ipynb")):
        info = read_chapter_status(layout.executed_dir / nb.stem)
        if nb.stem not in keep or info.get("status") != "ok" or info.get("profile") != profile:
            nb.unlink()
            dropped.append(nb.stem)
    for folder in sorted(p for p in layout.executed_dir.glob("*") if p.is_dir()):
        if folder.name not in keep:
            remove_moralkit_output(folder)
    return dropped


def unpublish_failed(run: ChapterRun, layout: BookLayout = REPO_BOOK) -> None:
    """Move a failed chapter's executed notebook out of the book to ``_build/failed/``."""
    if run.notebook.exists():
        failed = layout.build_dir / "failed" / run.notebook.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run.notebook), failed)
        run.notebook = failed
