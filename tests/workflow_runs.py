"""Running the Snakemake workflow (workflow/Snakefile) from tests, as a user runs it: a
subprocess on a copy of the book sources, with the data read through ../shared/data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from moralkit.book import BookLayout

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
LOCAL_PROFILE = REPO / "workflow" / "profiles" / "local"
UP_TO_DATE = "Nothing to be done (all requested files are present and up to date)"


def snakemake(
    workdir: Path, *args: str, env: dict | None = None, own_cache: bool = True
) -> subprocess.CompletedProcess:
    """Run Snakemake on the workflow in ``workdir``; stdout and stderr together.

    ``own_cache``: the run gets its own ``MORALKIT_CACHE`` under ``workdir`` (else it shares
    the caller's, as the book build does)."""
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "--directory",
           str(workdir), *args]  # fmt: skip
    cache = {"MORALKIT_CACHE": str(workdir / "cache")} if own_cache else {}
    return subprocess.run(
        cmd,
        cwd=REPO,
        env={**os.environ, **cache, **(env or {})},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def failure_excerpt(log: str, size: int = 6000) -> str:
    """A Snakemake log from its first traceback or failed rule (else its end)."""
    found = [i for i in (log.find("Traceback"), log.find("Error in rule")) if i >= 0]
    start = min(found) if found else max(0, len(log) - size)
    return log[start : start + size]


def copy_book(root: Path) -> BookLayout:
    """A copy of the book sources and config under ``root`` (nothing executed yet)."""
    shutil.copytree(
        REPO / "book", root / "book", ignore=shutil.ignore_patterns("_executed", "_generated")
    )
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, root / name)
    return BookLayout(root)
