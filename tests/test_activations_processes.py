"""The activation cache across real processes: a writer killed mid-write, two writers on one key,
and an unwritable cache. Each child runs a tiny random model; nothing depends on timing: the
kill comes from inside the write, and the two writers meet at a barrier before writing.

(paper §2.1; book: Methods › Activations, methods/activations.md.)
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from moralkit.activations import cached_activations
from moralkit.models import loading as model_loading

pytestmark = pytest.mark.slow  # each child process imports torch and transformers (~10-30 s)

TEXTS = ["helping a friend", "lying", "stealing bread", "lying"]


def run_child(script: str, cache, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MORALKIT_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def listing(cache) -> list[str]:
    root = cache / "activations"
    return sorted(os.listdir(root)) if root.exists() else []


def forbid_loading(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model must not be loaded on a cache hit")

    monkeypatch.setattr(model_loading, "load_model", fail)


def test_a_writer_killed_mid_write_leaves_a_temp_folder_that_a_later_run_removes(
    tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    child = run_child(
        f"""
        import os, signal
        from moralkit.activations import cached_activations, store

        real_save = store.save_array

        def save_then_die(path, array):
            real_save(path, array)
            os.kill(os.getpid(), signal.SIGKILL)  # mid-write: one array saved, no meta

        store.save_array = save_then_die
        cached_activations("tiny-llama", {TEXTS!r}, progress=False, num_threads=1)
        """,
        cache,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    left = listing(cache)
    assert [n for n in left if n.endswith(".tmp")], left  # the orphan this is about
    assert [n for n in left if not n.startswith(".")] == []  # and no entry

    monkeypatch.setenv("MORALKIT_CACHE", str(cache))
    acts = cached_activations("tiny-llama", TEXTS, progress=False, num_threads=1)
    assert acts.meta["cache_hit"] is False
    assert [n for n in listing(cache) if n.endswith((".tmp", ".del"))] == []
    forbid_loading(monkeypatch)
    assert cached_activations("tiny-llama", TEXTS, progress=False).meta["cache_hit"] is True


def _write_at_the_same_time(cache: str, barrier, results) -> None:
    """Child process: extract, wait for the other child, then both write the same entry."""
    os.environ["MORALKIT_CACHE"] = cache
    from moralkit.activations import cached_activations, store

    real_write = store.write_entry

    def write_together(*args, **kwargs):
        barrier.wait(timeout=600)  # both have missed the cache and extracted by now
        return real_write(*args, **kwargs)

    store.write_entry = write_together
    acts = cached_activations("tiny-llama", TEXTS, progress=False, num_threads=1)
    results.put((acts.meta["cache_hit"], acts.meta["cache_entry"], acts.arrays["mean"]))


def test_two_processes_writing_one_key_both_succeed_with_one_entry(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    children = [
        context.Process(target=_write_at_the_same_time, args=(str(cache), barrier, results))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join(timeout=600)
    assert [child.exitcode for child in children] == [0, 0]
    assert [hit for hit, _, _ in outcomes] == [False, False]  # both extracted and wrote
    assert outcomes[0][1] == outcomes[1][1]
    np.testing.assert_array_equal(outcomes[0][2], outcomes[1][2])
    assert [n for n in listing(cache) if not n.startswith(".")] == [
        os.path.basename(outcomes[0][1])
    ]
    assert [n for n in listing(cache) if n.endswith((".tmp", ".del"))] == []
    monkeypatch.setenv("MORALKIT_CACHE", str(cache))
    forbid_loading(monkeypatch)
    reread = cached_activations("tiny-llama", TEXTS, progress=False)  # checksums verified
    assert reread.meta["cache_hit"] is True
    np.testing.assert_array_equal(reread.arrays["mean"], outcomes[0][2])


def test_an_unwritable_cache_fails_in_a_fresh_process_before_extraction(tmp_path):
    """Root ignores chmod, so the cache is placed under a regular file: no one can create it."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    child = run_child(
        f"""
        from moralkit.activations import cache

        def no_extraction(*args, **kwargs):
            raise SystemExit("extraction started")

        cache.extract_activations = no_extraction
        cache.cached_activations("tiny-llama", {TEXTS!r}, progress=False)
        """,
        blocker / "cache",
    )
    assert child.returncode == 1
    assert "extraction started" not in child.stderr
    assert "PermissionError" in child.stderr and "MORALKIT_CACHE" in child.stderr
