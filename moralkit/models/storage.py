"""Fingerprints of model weight files, shared by model loading and the activation cache.

- :func:`fingerprint_file`: the sha256 of a file, or for files above ``full_limit`` bytes a
  cheaper fingerprint (size + sha256 of the first, middle and last MiB). Huge checkpoint shards
  (tens of GB) would otherwise take minutes to hash; the fingerprint still changes when a file is
  replaced by a different checkpoint, but not for a flipped byte in the middle of a shard.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from moralkit.io import sha256_of

FULL_HASH_LIMIT = 2 << 30  # files up to 2 GiB are hashed in full
_BLOCK = 1 << 20


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
