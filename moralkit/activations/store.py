"""The on-disk activation cache: keys, entries, integrity checks, and layer-subset lookup.

An entry ``<cache>/activations/<key32>-<layers12>/`` holds one ``<pooling>.npy`` of shape
(n_layers, n_unique_texts, d) and ``meta.json`` (with each file's size and sha256). The key is
everything that changes the numbers *except the layers* (a layer's values do not depend on which
other layers were extracted with it), so any entry of a key whose layers include the requested
ones serves the request; an entry whose layers are a subset of a newer entry's is removed.
Entries are written atomically (temp folder, then rename); temp folders left by a killed writer
are removed by a later run (:func:`moralkit.io.clean_stale_temporaries`). (paper §2.1; book:
Methods › Activations, methods/activations.md.)
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moralkit.activation_set import ActivationSet
from moralkit.io import atomic_directory, remove_directory, sha256_of
from moralkit.models.identity import ModelIdentity
from moralkit.paths import cache_root

CACHE_FORMAT_VERSION = 2  # 2: layers left out of the key (entries serve layer subsets)
META_FILE = "meta.json"
REQUIRED_META = ("format", "cache_key", "layers", "n_model_layers", "model_id", "files")
REQUIRED_FILE_INFO = ("file", "shape", "bytes", "sha256")


class CorruptCacheEntry(Exception):
    """A cache entry whose meta, shapes or checksums do not match."""


def activation_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``<cache_dir or $MORALKIT_CACHE>/activations``."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return base / "activations"


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 of the texts in order (length-prefixed, so no two lists collide)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def cache_key(
    identity: ModelIdentity,
    unique_texts: Sequence[str],
    poolings: Sequence[str],
    template: str,
    system_prompt: str | None,
    dtype: str,
    random_init: bool,
    seed: int,
    max_tokens: int,
) -> str:
    """The content address of an extraction: everything that changes its numbers but layers."""
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "model_id": identity.model_id,
        "revision": identity.revision,
        "weights_hash": identity.weights_hash,
        "random_init_seed": int(seed) if random_init else None,
        "texts": texts_hash(unique_texts),
        "template": template,
        "system_prompt": system_prompt,
        "poolings": sorted(poolings),
        "dtype": dtype,
        "max_tokens": int(max_tokens),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def entry_path(root: Path, key: str, layers: Sequence[int]) -> Path:
    """The folder of the entry holding ``layers`` of ``key``."""
    tag = hashlib.sha256(",".join(str(int(x)) for x in layers).encode()).hexdigest()[:12]
    return root / f"{key[:32]}-{tag}"


def read_meta(entry: Path, key: str) -> dict[str, Any]:
    """An entry's validated ``meta.json``; CorruptCacheEntry when unreadable or incomplete."""
    try:
        meta = json.loads((entry / META_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CorruptCacheEntry(f"unreadable {META_FILE}: {err}") from err
    if not isinstance(meta, dict):
        raise CorruptCacheEntry(f"{META_FILE} holds {type(meta).__name__}, not an object")
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise CorruptCacheEntry(f"{META_FILE} lacks {missing}")
    if meta["cache_key"] != key or meta["format"] != CACHE_FORMAT_VERSION:
        raise CorruptCacheEntry(f"{META_FILE} belongs to another key or cache format")
    files = meta["files"]
    if not isinstance(files, dict) or not files:
        raise CorruptCacheEntry(f"{META_FILE} lists no array files")
    for pooling, info in files.items():
        lacking = [k for k in REQUIRED_FILE_INFO if not isinstance(info, dict) or k not in info]
        if lacking:
            raise CorruptCacheEntry(f"{META_FILE}: the entry for {pooling!r} lacks {lacking}")
    return meta


def read_entry(entry: Path, key: str) -> ActivationSet:
    """The entry's arrays (memory-mapped) after checking sizes, sha256 and shapes."""
    meta = read_meta(entry, key)
    arrays = {}
    for pooling, info in meta["files"].items():
        path = entry / info["file"]
        if not path.exists() or path.stat().st_size != info["bytes"]:
            raise CorruptCacheEntry(f"{path.name} is missing or has the wrong size")
        if sha256_of(path) != info["sha256"]:
            raise CorruptCacheEntry(f"{path.name} fails its sha256 check")
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise CorruptCacheEntry(f"{path.name}: {err}") from err
        if list(array.shape) != info["shape"] or array.dtype != np.float32:
            raise CorruptCacheEntry(f"{path.name} has shape {array.shape}, not {info['shape']}")
        arrays[pooling] = array
    try:
        return ActivationSet(
            arrays, tuple(meta["layers"]), meta["n_model_layers"], meta["model_id"], meta
        )
    except (TypeError, ValueError) as err:
        raise CorruptCacheEntry(f"{META_FILE} does not match its arrays: {err}") from err


def save_array(path: Path, array: np.ndarray) -> None:
    """One pooling's array as float32 ``.npy``."""
    np.save(path, np.ascontiguousarray(array, dtype=np.float32))


def write_entry(entry: Path, acts: ActivationSet, meta: dict[str, Any]) -> None:
    """Write ``acts`` into ``entry`` atomically (a concurrent identical write wins harmlessly)."""
    with atomic_directory(entry, locked=True) as tmp:
        files = {}
        for pooling, array in acts.arrays.items():
            name = f"{pooling}.npy"
            save_array(tmp / name, array)
            files[pooling] = {
                "file": name,
                "shape": list(array.shape),
                "bytes": (tmp / name).stat().st_size,
                "sha256": sha256_of(tmp / name),
            }
        meta = {**meta, "layers": list(acts.layers), "files": files}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))


def find_entries(root: Path, key: str) -> list[tuple[Path, tuple[int, ...]]]:
    """(folder, layers) of each readable entry of ``key``, fewest layers first.

    An entry with a broken ``meta.json`` is reported and removed.
    """
    found = []
    for path in sorted(root.glob(f"{key[:32]}-*")) if root.is_dir() else []:
        try:
            meta = read_meta(path, key)
        except CorruptCacheEntry as err:
            discard(path, err)
            continue
        found.append((path, tuple(int(x) for x in meta["layers"])))
    return sorted(found, key=lambda item: len(item[1]))


def lookup(
    root: Path, key: str, layers: Sequence[int]
) -> tuple[ActivationSet | None, ActivationSet | None]:
    """(an entry holding all ``layers``, or None; else the largest other entry, or None).

    The second is what a new extraction of the missing layers is merged with.
    """
    wanted = set(layers)
    candidates = find_entries(root, key)
    for path, stored in candidates:  # smallest covering entry first: cheapest to verify
        if wanted <= set(stored) and (acts := try_read(path, key)) is not None:
            return acts, None
    for path, _ in reversed(candidates):
        if (acts := try_read(path, key)) is not None:
            return None, acts
    return None, None


def try_read(entry: Path, key: str) -> ActivationSet | None:
    """The entry, or None after reporting and removing a corrupt one."""
    try:
        return read_entry(entry, key)
    except CorruptCacheEntry as err:
        discard(entry, err)
        return None


def discard(entry: Path, err: Exception) -> None:
    """Remove a corrupt entry with a warning (silently if another process already removed it)."""
    if not entry.exists():
        return
    warnings.warn(
        f"activation cache entry {entry} is corrupt ({err}); recomputing it",
        RuntimeWarning,
        stacklevel=4,
    )
    remove_directory(entry, locked=True)


def store(root: Path, key: str, acts: ActivationSet, meta: dict[str, Any]) -> Path:
    """Write a new entry, then remove the entries whose layers it includes."""
    entry = entry_path(root, key, acts.layers)
    write_entry(entry, acts, meta)
    for path, stored in find_entries(root, key):
        if path != entry and set(stored) < set(acts.layers):
            remove_directory(path, locked=True)
    return entry


def merge_layers(base: ActivationSet, fresh: ActivationSet) -> ActivationSet:
    """One set with the layers of both (same texts and poolings), sorted by layer."""
    layers = tuple(sorted(set(base.layers) | set(fresh.layers)))
    arrays = {}
    for pooling, array in fresh.arrays.items():
        merged = np.empty((len(layers), *array.shape[1:]), dtype=np.float32)
        for i, layer in enumerate(layers):
            source = fresh if layer in fresh.layers else base
            merged[i] = source.arrays[pooling][source.layers.index(layer)]
        arrays[pooling] = merged
    return ActivationSet(arrays, layers, fresh.n_model_layers, fresh.model_id, dict(fresh.meta))
