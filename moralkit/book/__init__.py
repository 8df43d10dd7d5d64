"""Executing the chapter notebooks and building the Jupyter Book (v1) site.

One module per job:

- :mod:`~moralkit.book.layout`: where the book's folders are;
- :mod:`~moralkit.book.sources`: finding chapter notebooks and their parameter names;
- :mod:`~moralkit.book.output_dirs`: output folders moralkit may clear (and the refusal of others);
- :mod:`~moralkit.book.execution`: running one chapter with papermill after early checks;
- :mod:`~moralkit.book.postprocess`: figure cells and progress bars of an executed notebook;
- :mod:`~moralkit.book.pages`: the generated status and claims tables;
- :mod:`~moralkit.book.unpublish`: keeping only this build's pages;
- :mod:`~moralkit.book.mathjax`: the vendored MathJax;
- :mod:`~moralkit.book.build`: ``moralkit book`` end to end.

Reading a notebook's parameters cell lives in :mod:`moralkit.notebooks`, shared with
:mod:`moralkit.chapter` (neither imports the other).
"""

from moralkit.book.build import ChapterFailed, build_book, run_jupyter_book
from moralkit.book.execution import (
    ChapterRun,
    RunInterrupted,
    cache_state,
    check_parameters,
    execute_chapter,
)
from moralkit.book.layout import REPO_BOOK, RUN_RECORD, BookLayout
from moralkit.book.mathjax import ensure_mathjax
from moralkit.book.output_dirs import OutputFolderError, is_moralkit_output, prepare_output_dir
from moralkit.book.pages import (
    claims_markdown,
    read_chapter_status,
    status_markdown,
    write_generated_pages,
)
from moralkit.book.postprocess import (
    prepare_figure_cells,
    strip_progress_bars,
    tidy_executed_notebook,
)
from moralkit.book.sources import (
    NOTEBOOK_DIR,
    ChapterSource,
    chapter_parameter_names,
    find_chapter,
    list_chapters,
)
from moralkit.book.unpublish import unpublish_failed, unpublish_stale

__all__ = [
    "NOTEBOOK_DIR",
    "REPO_BOOK",
    "RUN_RECORD",
    "BookLayout",
    "ChapterFailed",
    "ChapterRun",
    "ChapterSource",
    "OutputFolderError",
    "RunInterrupted",
    "build_book",
    "cache_state",
    "chapter_parameter_names",
    "check_parameters",
    "claims_markdown",
    "ensure_mathjax",
    "execute_chapter",
    "find_chapter",
    "is_moralkit_output",
    "list_chapters",
    "prepare_figure_cells",
    "prepare_output_dir",
    "unpublish_stale",
    "read_chapter_status",
    "run_jupyter_book",
    "status_markdown",
    "strip_progress_bars",
    "tidy_executed_notebook",
    "unpublish_failed",
    "write_generated_pages",
]
