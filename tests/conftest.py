"""Fixtures shared across test modules."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from shared_data import SHARED_DATA
from workflow_runs import LOCAL_PROFILE, SNAKEMAKE, copy_book, failure_excerpt, snakemake

from moralkit.book import BookLayout
from moralkit.threads import torch_threads


@pytest.fixture(scope="session", autouse=True)
def example_files():
    """The example files the README and chapters name, in examples/ (``moralkit examples``;
    ``make`` writes them too; files already there are kept)."""
    from moralkit.example_files import write_examples

    return write_examples(Path(__file__).resolve().parents[1] / "examples")


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


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty hub cache in a temporary HF_HOME, with the hub switched off."""
    import huggingface_hub.constants as constants

    from moralkit.models import hub as moralkit_hub

    home = tmp_path / "hf"
    hub_cache = home / "hub"
    hub_cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads both at import; the process may have imported it already
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "moralkit-cache"))
    moralkit_hub.hub_answers.cache_clear()
    return hub_cache


@dataclass(frozen=True)
class BuiltBook:
    """A book built through the workflow: where, the environment it ran in, Snakemake's log."""

    layout: BookLayout
    env: dict
    log: str

    @property
    def html_dir(self) -> Path:
        return self.layout.html_dir


@dataclass(frozen=True)
class TinyBook(BuiltBook):
    """The real chapters built on the tiny profile through the workflow, and how to run it."""

    args: tuple[str, ...] = ()


def _book_to_build(tmp_path_factory, name: str) -> tuple[Path, BookLayout, dict]:
    """A fresh copy of the book sources to build through the workflow, and the data mirror's
    environment; skips without Snakemake or the mirror."""
    if not SNAKEMAKE.exists():
        pytest.skip("snakemake not installed: pip install -e '.[cluster]'")
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    root = tmp_path_factory.mktemp(name)
    # absolute: the workflow runs in another folder (issue 21, bad input #8)
    mirror = Path(os.environ.get("MORALKIT_DATA_MIRROR") or SHARED_DATA).resolve()
    return root, copy_book(root), {"MORALKIT_DATA_MIRROR": str(mirror)}


@pytest.fixture(scope="session")
def tiny_book(tmp_path_factory) -> TinyBook:
    """The book of every notebooks/ chapter on the tiny profile, built once per test session
    by the Snakemake workflow (local profile): data jobs, extraction, SAEs, chapters, site.

    It shares the caller's ``MORALKIT_CACHE``, as ``moralkit book`` would."""
    root, layout, env = _book_to_build(tmp_path_factory, "tiny-book")
    args = ("--profile", str(LOCAL_PROFILE), "--config", "profile=tiny", f"root={root}")
    run = snakemake(root, *args, env=env, own_cache=False)
    assert run.returncode == 0, failure_excerpt(run.stdout)
    return TinyBook(layout, env, run.stdout, args)


@dataclass(frozen=True)
class RehearsalBook(BuiltBook):
    """The book built on the rehearsal profile through the workflow, inside the rehearsal's
    services (still serving while the session lasts)."""

    out: Path = Path()
    wall_time_s: float = 0.0
    downloads: tuple = ()
    judge_calls: int = 0

    def timings(self) -> str:
        """Wall time per chapter job (from its marker) and of the whole run."""
        import json

        lines = [f"rehearsal: {self.wall_time_s:.0f} s in all (workflow and site)"]
        for marker in sorted((self.out / "chapters").glob("*.json")):
            lines.append(f"  {marker.stem}: {json.loads(marker.read_text())['wall_time_s']} s")
        return "\n".join(lines)


@pytest.fixture(scope="session")
def rehearsal_book(tmp_path_factory):
    """Every chapter on the ``rehearsal`` profile (the paper's parameters on tiny twins, the
    synthetic Social-Chem zip over HTTP, a local judge endpoint) through the Snakemake workflow
    (local profile), then the site: once per test session. Shares the caller's MORALKIT_CACHE."""
    import time

    from moralkit.rehearsal import serve
    from moralkit.rehearsal.__main__ import snakemake_command

    root, layout, mirror = _book_to_build(tmp_path_factory, "rehearsal")
    started = time.perf_counter()
    with serve(root / "services") as rehearsal:
        env = {**os.environ, **mirror, **rehearsal.env}
        cmd = snakemake_command(root, root)
        run = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)  # fmt: skip
        assert run.returncode == 0, failure_excerpt(run.stdout)
        yield RehearsalBook(
            layout, {**mirror, **rehearsal.env}, run.stdout,
            out=root / "_build" / "workflow" / "rehearsal",
            wall_time_s=time.perf_counter() - started,
            downloads=tuple(rehearsal.files.requests), judge_calls=len(rehearsal.judge.calls),
        )  # fmt: skip
