"""Fixtures shared across test modules."""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from shared_data import SHARED_DATA
from workflow_runs import LOCAL_PROFILE, SNAKEMAKE, copy_book, failure_excerpt, snakemake

from moralkit.book import BookLayout
from moralkit.threads import torch_threads


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread avoids OpenMP spin-waiting when the CPU is shared (10x faster)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def offline_mirror(tmp_path_factory):
    """For one test module: read data through ../shared/data, into a fresh moralkit cache."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MORALKIT_CACHE", str(tmp_path_factory.mktemp("mirror") / "cache"))
        mp.setenv("MORALKIT_DATA_MIRROR", str(SHARED_DATA))
        yield SHARED_DATA


@dataclass(frozen=True)
class TinyBook:
    """The real chapters built on the tiny profile through the workflow, and how to run it."""

    layout: BookLayout
    args: tuple[str, ...]
    env: dict
    log: str

    @property
    def html_dir(self) -> Path:
        return self.layout.html_dir


@pytest.fixture(scope="session")
def tiny_book(tmp_path_factory) -> TinyBook:
    """The book of every notebooks/ chapter on the tiny profile, built once per test session
    by the Snakemake workflow (local profile): data jobs, extraction, SAEs, chapters, site.

    It shares the caller's ``MORALKIT_CACHE``, as ``moralkit book`` would."""
    if not SNAKEMAKE.exists():
        pytest.skip("snakemake not installed: pip install -e '.[cluster]'")
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    root = tmp_path_factory.mktemp("tiny-book")
    layout = copy_book(root)
    # absolute: the workflow runs in another folder (issue 21, bad input #8)
    mirror = Path(os.environ.get("MORALKIT_DATA_MIRROR") or SHARED_DATA).resolve()
    env = {"MORALKIT_DATA_MIRROR": str(mirror)}
    args = ("--profile", str(LOCAL_PROFILE), "--config", "profile=tiny", f"root={root}")
    run = snakemake(root, *args, env=env, own_cache=False)
    assert run.returncode == 0, failure_excerpt(run.stdout)
    return TinyBook(layout, args, env, run.stdout)
