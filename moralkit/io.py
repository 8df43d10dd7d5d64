"""Atomic file and folder writes: a reader never sees a half-written cache entry or output."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix + ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; give the final file the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | Path, write: Callable[[Path], object], suffix: str = "") -> Path:
    """Call ``write(tmp_path)`` then rename the result onto ``path``."""
    with atomic_path(path, suffix=suffix) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a DataFrame as CSV (no index) atomically."""
    return atomic_write(path, lambda p: table.to_csv(p, index=False), suffix=".csv")


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write text (UTF-8) atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; rename it onto ``path`` on success.

    If the block raises, the temporary folder is deleted and ``path`` is untouched. If ``path``
    already exists when the block finishes (another process won the race), the existing folder
    is kept and the new one discarded: both were built from the same inputs.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_directory(path: str | Path) -> None:
    """Delete a folder so that readers never see it half-deleted (rename away, then remove)."""
    path = Path(path)
    if not path.exists():
        return
    doomed = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".del"))
    os.rename(path, doomed / path.name)
    shutil.rmtree(doomed, ignore_errors=True)
