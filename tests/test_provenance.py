"""Provenance helpers: git state, memory, JSON conversion and the provenance block."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from moralkit import provenance as prov


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def test_git_state_commit_and_dirty_flag(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    assert prov.git_state(repo) == {"commit": None, "dirty": False}  # no commits yet
    (repo / "a.txt").write_text("1")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "x")
    state = prov.git_state(repo)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (repo / "a.txt").write_text("2")
    assert prov.git_state(repo)["dirty"] is True


def test_git_state_outside_a_repo(tmp_path):
    assert prov.git_state(tmp_path)["commit"] is None


def test_format_git():
    assert prov.format_git({"commit": "a" * 40, "dirty": True}) == "aaaaaaaaaaaa (dirty)"
    assert prov.format_git({"commit": "b" * 40, "dirty": False}) == "bbbbbbbbbbbb"
    assert "no commit" in prov.format_git({"commit": None})


def test_sha256_of_file(tmp_path):
    from moralkit.io import sha256_of

    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    assert sha256_of(path) == ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


def test_peak_memory_and_device():
    assert prov.peak_memory_mb() > 10  # this Python process alone uses more than 10 MiB
    assert prov.describe_device("cpu").startswith("CPU ")
    assert "cores" in prov.describe_device(None)


def test_to_jsonable_handles_numpy_paths_and_tuples():
    data = {"a": np.float32(0.5), "b": (1, 2), "c": Path("/x"), 3: {np.int64(4)}, "d": None}
    out = prov.to_jsonable(data)
    assert json.loads(json.dumps(out)) == {"a": 0.5, "b": [1, 2], "c": "/x", "3": [4], "d": None}


def test_write_json_is_atomic_and_readable(tmp_path):
    path = prov.write_json({"x": np.int32(3)}, tmp_path / "sub" / "p.json")
    assert json.loads(path.read_text()) == {"x": 3}
    assert [p.name for p in path.parent.iterdir()] == ["p.json"]


@pytest.fixture
def record():
    return {
        "chapter": "02_categorical_indifference",
        "profile": "quick",
        "status": "ok",
        "params": {"model": ["smollm2-135m", "gemma-3-270m"], "layers": "all", "seed": 42},
        "models": [
            {
                "name": "smollm2-135m",
                "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
                "revision": "gguf-q4_1",
                "weights_hash": "0123456789abcdef" * 4,
                "n_layers": 30,
                "cache_key": "k1",
                "cache_hit": False,
                "extraction_s": 80.0,
                "dtype": "bfloat16",
                "device": "cuda",
                "poolings": ["mean", "last"],
                "template": "{action} is morally",
            }
        ],
        "data": [
            {
                "ground_truth": "moralstrength",
                "n_records": 2800,
                "checksums": {"moralstrength-lexicon": "feedbeef" * 8},
            }
        ],
        "versions": {
            "moralkit": "0.1.0",
            "python": "3.11.2",
            "torch": "2.13.0",
            "transformers": "5.23.0",
        },
        "git": {"commit": "c" * 40, "dirty": True},
        "device": "CPU AMD EPYC (2 cores)",
        "started": "2026-01-01 00:00:00",
        "wall_time_s": 123.4,
        "peak_memory_mb": 2048.0,
        "peak_gpu_memory_mb": None,
    }


def test_provenance_markdown_shows_every_field(record):
    text = prov.provenance_markdown(record)
    lines = text.strip().splitlines()
    assert lines[0] == "| item | value |" and lines[1] == "|---|---|"
    assert all(line.startswith("| ") and line.endswith(" |") for line in lines[2:])
    for expected in (
        "| profile | quick |",
        "parameter `model` | smollm2-135m, gemma-3-270m",
        "parameter `layers` | all",
        "HuggingFaceTB/SmolLM2-135M-Instruct @ gguf-q4_1",
        "weights sha256 0123456789abcdef",
        "cache miss",
        "dtype bfloat16 on cuda; poolings mean, last; template '{action} is morally'",
        "moralstrength-lexicon sha256 feedbeeffeedbeef",
        "| moralkit | 0.1.0 |",
        "cccccccccccc (dirty)",
        "3.11.2 / 2.13.0 / 5.23.0",
        "| device | CPU AMD EPYC (2 cores) |",
        "| wall time | 123.4 s |",
        "| peak memory (maxrss) | 2048 MiB |",
    ):
        assert expected in text, expected
    assert "peak GPU memory" not in text


def test_provenance_markdown_escapes_pipes(record):
    record["params"]["template"] = "a | b"
    assert "a \\| b" in prov.provenance_markdown(record)
