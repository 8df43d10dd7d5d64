"""Finding the chapter notebooks (``notebooks/NN_name.md``) and their parameter names."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from moralkit.notebooks import notebook_parameters
from moralkit.profiles import valid_parameter_names
from moralkit.provenance import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
_CHAPTER_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class ChapterSource:
    """A chapter notebook in notebooks/: ``02_categorical_indifference.md``."""

    chapter_id: str
    path: Path

    @property
    def number(self) -> str:
        return self.chapter_id.split("_", 1)[0]

    @property
    def title(self) -> str:
        """The first ``# `` heading of the notebook (the id if there is none)."""
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return self.chapter_id


def list_chapters(notebook_dir: str | Path | None = None) -> list[ChapterSource]:
    """Chapter notebooks ``NN_name.md`` in ``notebook_dir`` (default notebooks/), sorted.

    ``$MORALKIT_NOTEBOOK_DIR`` replaces the default folder.
    """
    folder = Path(notebook_dir or os.environ.get("MORALKIT_NOTEBOOK_DIR") or NOTEBOOK_DIR)
    if not folder.is_dir():
        return []
    return [
        ChapterSource(p.stem, p) for p in sorted(folder.glob("*.md")) if _CHAPTER_RE.match(p.stem)
    ]


def find_chapter(name: str, chapters: Sequence[ChapterSource] | None = None) -> ChapterSource:
    """A chapter by full id, number ("02", "2") or unique id prefix; errors list the chapters."""
    chapters = list_chapters() if chapters is None else list(chapters)
    key = str(name).strip().removesuffix(".md")
    if key.isdigit():
        key = f"{int(key):02d}"
    hits = [c for c in chapters if c.chapter_id == key] or [
        c for c in chapters if c.number == key or c.chapter_id.startswith(key)
    ]
    if len(hits) != 1:
        listing = ", ".join(c.chapter_id for c in chapters) or "(none found)"
        problem = "ambiguous" if hits else "unknown"
        raise ValueError(f"{problem} chapter {name!r}; chapters: {listing}")
    return hits[0]


def chapter_parameter_names(chapter: ChapterSource) -> list[str]:
    """Valid parameter names for a chapter (common ∪ declared extras ∪ parameters cell)."""
    return valid_parameter_names(chapter.chapter_id, notebook_parameters(chapter.path))
