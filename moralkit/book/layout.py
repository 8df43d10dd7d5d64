"""Where the book's pieces live, all derived from one root (the checkout, or a test copy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from moralkit.provenance import REPO_ROOT

#: the record of one execution, written beside the chapter's outputs
RUN_RECORD = "run.json"


@dataclass(frozen=True)
class BookLayout:
    """The book's folders under ``root``.

    ``<root>/_config.yml`` and ``<root>/_toc.yml`` configure the book whose source folder is
    ``<root>/book``; executed chapters go to ``book/_executed/`` (one ``<id>.ipynb`` plus a
    ``<id>/`` folder of tables, figures, claims.json, provenance.json and run.json) and the
    site to ``<root>/_build/html``.
    """

    root: Path = REPO_ROOT

    @property
    def book_dir(self) -> Path:
        return self.root / "book"

    @property
    def executed_dir(self) -> Path:
        return self.book_dir / "_executed"

    @property
    def generated_dir(self) -> Path:
        return self.book_dir / "_generated"

    @property
    def build_dir(self) -> Path:
        return self.root / "_build"

    @property
    def html_dir(self) -> Path:
        return self.build_dir / "html"

    @property
    def config(self) -> Path:
        return self.root / "_config.yml"

    @property
    def toc(self) -> Path:
        return self.root / "_toc.yml"


REPO_BOOK = BookLayout()
