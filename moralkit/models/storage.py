"""On-disk primitives shared by model conversion and the activation cache.

- :func:`atomic_directory`: build a whole folder under a temporary name and rename it into
  place, so an interrupted run never leaves a half-written converted model or cache entry
  (``moralkit.io`` does the same for single files).
- :func:`fingerprint_file`: the sha256 of a file, or for files above ``full_limit`` bytes a
  cheaper fingerprint (size + sha256 of the first, middle and last MiB). Huge checkpoint shards
  (tens of GB) would otherwise take minutes to hash; the fingerprint still changes when a file is
  replaced by a different checkpoint, but not for a flipped byte in the middle of a shard.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from moralkit.data.fetch import sha256_of

FULL_HASH_LIMIT = 2 << 30  # files up to 2 GiB are hashed in full
_BLOCK = 1 << 20


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


def fingerprint_file(path: str | Path, full_limit: int = FULL_HASH_LIMIT) -> str:
    """Hex sha256 of the file, or ``"sampled:"`` + a hash of size and 3 sampled MiB if huge."""
    path = Path(path)
    size = path.stat().st_size
    if size <= full_limit:
        return sha256_of(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        for offset in (0, size // 2, max(size - _BLOCK, 0)):
            handle.seek(offset)
            digest.update(handle.read(_BLOCK))
    return "sampled:" + digest.hexdigest()
