"""A Hugging Face hub cache written by hand, laid out as ``huggingface_hub`` writes it.

``models--org--name/refs/main`` names a commit; ``snapshots/<commit>/<file>`` are relative
symlinks into ``blobs/<sha256>``. With ``HF_HUB_CACHE`` pointing here and ``HF_HUB_OFFLINE=1``
a model loads by hub id exactly as from a user's filled cache (book: Methods › Re-running,
reproduce.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from moralkit.models.registry import get_model_spec
from moralkit.models.twins import twin_commit, write_twin


def repo_folder(hub_cache: Path, repo_id: str) -> Path:
    """The cache folder of a model repository (``models--org--name``)."""
    return Path(hub_cache) / f"models--{repo_id.replace('/', '--')}"


def add_snapshot(hub_cache: Path, repo_id: str, commit: str, files: Path, main: bool) -> Path:
    """Store the files of folder ``files`` as snapshot ``commit`` of ``repo_id`` (blobs named
    by sha256); ``main=True`` points ``refs/main`` at it."""
    repo = repo_folder(hub_cache, repo_id)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for path in sorted(files.iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copy(path, blob)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    if main:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return snapshot


def write_twin_cache(hub_cache: Path, models: Iterable[str]) -> dict[str, str]:
    """The twins of ``models`` (registry names) under their real hub ids, ``refs/main`` at a
    commit derived from each twin's construction. A snapshot already present is kept (it
    holds the same bytes). Returns ``{registry name: commit}``."""
    hub_cache = Path(hub_cache)
    hub_cache.mkdir(parents=True, exist_ok=True)
    commits = {}
    for name in models:
        spec = get_model_spec(name)
        commit = twin_commit(spec.name)
        repo = repo_folder(hub_cache, spec.hf_id)
        main = repo / "refs" / "main"
        if main.is_file() and main.read_text().strip() != commit:
            raise ValueError(
                f"{hub_cache} holds another snapshot of {spec.hf_id} (refs/main = "
                f"{main.read_text().strip()}): a real hub cache, or twins of another version. "
                "Twins are written only into a cache of their own (an empty folder)."
            )
        if not (repo / "snapshots" / commit / "config.json").exists():
            with tempfile.TemporaryDirectory(dir=hub_cache, prefix=".twin-") as work:
                folder = write_twin(spec.name, Path(work) / "files")
                shutil.rmtree(repo / "snapshots" / commit, ignore_errors=True)  # a half write
                add_snapshot(hub_cache, spec.hf_id, commit, folder, main=True)
        commits[spec.name] = commit
    return commits
