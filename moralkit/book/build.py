"""``moralkit book``: execute the chapters, write the generated pages, build the site.

Pipeline: jupytext MyST notebook (notebooks/NN_*.md) -> papermill with the profile and
parameters -> executed ``.ipynb`` in ``book/_executed/`` with the chapter's tables and figures
beside it -> status and claims pages -> ``jupyter-book build`` (v1) with notebook execution
off and warnings as errors. A failing chapter stops the build, so a page without outputs is
never published.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from moralkit.book.execution import ChapterRun, execute_chapter
from moralkit.book.layout import REPO_BOOK, BookLayout
from moralkit.book.mathjax import ensure_mathjax
from moralkit.book.pages import write_generated_pages
from moralkit.book.postprocess import tidy_executed_notebook
from moralkit.book.sources import NOTEBOOK_DIR, find_chapter, list_chapters
from moralkit.book.unpublish import unpublish_failed, unpublish_stale
from moralkit.profiles import DEFAULT_PROFILE, get_profile


class ChapterFailed(RuntimeError):
    """Raised by ``moralkit book`` when at least one chapter failed to execute."""


def run_jupyter_book(layout: BookLayout = REPO_BOOK, strict: bool = True) -> Path:
    """``jupyter-book build book/`` with the root _config.yml and _toc.yml; returns the html dir.

    ``strict`` turns warnings into errors (``-W -n --keep-going``).
    """
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(exe) if exe.exists() else "jupyter-book",
        "build",
        str(layout.book_dir),
        "--config",
        str(layout.config),
        "--toc",
        str(layout.toc),
        "--path-output",
        str(layout.root),
        "--builder",
        "html",
        "--all",
    ]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    result = subprocess.run(cmd, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode}); see above")
    return layout.html_dir


def build_book(
    profile: str = DEFAULT_PROFILE,
    only: Iterable[str] | None = None,
    keep_going: bool = False,
    strict: bool = True,
    layout: BookLayout = REPO_BOOK,
    notebook_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Execute chapters (all, or ``only``) under ``profile``, write status/claims, build the site.

    Stops at the first failing chapter unless ``keep_going`` (then runs the rest, and still
    fails before the site is built). Returns the HTML folder.
    """
    get_profile(profile)
    chapters = list_chapters(notebook_dir)
    if not chapters:
        raise ChapterFailed(f"no chapter notebooks (NN_name.md) in {notebook_dir or NOTEBOOK_DIR}")
    selected = [find_chapter(x, chapters) for x in only] if only else chapters
    ensure_mathjax(layout)
    layout.executed_dir.mkdir(parents=True, exist_ok=True)
    failures: list[ChapterRun] = []
    t0 = time.perf_counter()
    for chapter in selected:
        log(f"[moralkit book] executing {chapter.chapter_id} (profile {profile}) ...")
        run = execute_chapter(
            chapter,
            layout.executed_dir / f"{chapter.chapter_id}.ipynb",
            layout.executed_dir / chapter.chapter_id,
            profile,
            cwd=layout.executed_dir,
        )
        caches = f" ({run.caches} caches)" if run.caches else ""
        log(f"[moralkit book]   {'ok' if run.ok else 'FAILED'} in {run.wall_time_s:.0f} s{caches}")
        if run.ok:
            tidy_executed_notebook(run.notebook)
        else:
            unpublish_failed(run, layout)
            log(f"[moralkit book] {chapter.chapter_id} failed (executed notebook: {run.notebook})")
            log(run.error)
            failures.append(run)
            if not keep_going:
                break
    if failures:
        names = ", ".join(r.chapter.chapter_id for r in failures)
        raise ChapterFailed(f"chapter(s) failed: {names}; the book was not built")
    dropped = unpublish_stale(chapters, profile, layout)
    if dropped:
        log(f"[moralkit book] left out (not run under profile {profile}): {', '.join(dropped)}")
    write_generated_pages(chapters, profile, layout)
    log(f"[moralkit book] notebooks done in {time.perf_counter() - t0:.0f} s; building the site")
    html = run_jupyter_book(layout, strict=strict)
    log(f"[moralkit book] site: {html / 'index.html'} ({time.perf_counter() - t0:.0f} s in all)")
    return html
