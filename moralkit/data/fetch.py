"""Get a manifest file onto local disk, verified: the one way moralkit reads input data.

Lookup order for ``fetch(name)`` (paper §1.1 names the sources; book: Methods › Data,
methods/data.md):

1. ``$MORALKIT_DATA_MIRROR/<mirror_path>``: a local folder laid out like the manifest's
   ``mirror_path`` column (for example ``../shared/data``). A relative value is resolved once,
   where it is first read, against the folder the process is in, and written back as an
   absolute path, so that kernels and workflow jobs started later in other folders read the
   same mirror (:func:`moralkit.paths.resolve_mirror`); a value that names no folder is an error
   naming it, raised before any download is tried (:class:`moralkit.paths.DataMirrorError`). A
   mirror file is verified (sha256, or size where the manifest gives no hash) and then **read in
   place**: it is not copied, so the mirror must stay put while moralkit runs.
2. ``$MORALKIT_CACHE/downloads/<name>/<file>`` (default ``~/.cache/moralkit``): pooch
   downloads ``url`` there into a temporary file, checks the sha256 and only then renames it
   into place, so a half-written download is never used. Later calls re-verify and reuse it.
   A cached copy that fails its check is moved aside to ``<file>.corrupt`` (kept for
   inspection, never deleted) and downloaded again; if that download fails too, the error
   says both things (:class:`CorruptCacheError`).

A file missing everywhere raises :class:`DataFileNotFoundError` naming the file, the mirror
path looked at and the URL; a file whose bytes differ raises :class:`DataChecksumError`.
Files without a published hash (the full Social-Chem-101 zip) are verified by row count by
their loader, through :func:`verify_row_count`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import pooch

from moralkit.data.manifest import DataFile, Manifest, load_manifest
from moralkit.io import sha256_of
from moralkit.paths import MIRROR_ENV, cache_dir, mirror_dir


class DataFileNotFoundError(FileNotFoundError):
    """A manifest file is neither in the mirror nor downloadable."""


class DataChecksumError(ValueError):
    """A file's bytes (or row count) differ from what the manifest promises."""


class CorruptCacheError(DataFileNotFoundError):
    """A cached download failed its checksum, was moved aside, and could not be re-fetched."""


def verify_file(entry: DataFile, path: Path) -> str:
    """Check ``path`` against the manifest entry; return its sha256.

    With a manifest sha256 the hash must match; without one, the size must match where the
    manifest gives ``bytes`` (the row count is the loader's job, :func:`verify_row_count`).
    """
    actual = sha256_of(path)
    if entry.sha256 is not None and actual != entry.sha256.lower():
        raise DataChecksumError(
            f"checksum mismatch for data file {entry.name!r} at {path}: sha256 {actual}, "
            f"manifest expects {entry.sha256} (url {entry.url}). The file is corrupt or a "
            "different version."
        )
    if entry.sha256 is None and entry.bytes is not None:
        size = path.stat().st_size
        if size != entry.bytes:
            raise DataChecksumError(
                f"size mismatch for data file {entry.name!r} at {path}: {size} bytes, "
                f"manifest expects {entry.bytes} (url {entry.url})"
            )
    return actual


def verify_row_count(entry: DataFile, n_rows: int, where: str | Path) -> None:
    """Check a parsed row count against the manifest where no sha256 pins the bytes."""
    if entry.sha256 is None and entry.rows is not None and n_rows != entry.rows:
        raise DataChecksumError(
            f"row count mismatch for data file {entry.name!r} ({where}): parsed {n_rows} data "
            f"rows, manifest expects {entry.rows} (url {entry.url}). The download is truncated "
            "or a different release."
        )


def _download(entry: DataFile, target_dir: Path) -> Path:
    known_hash = f"sha256:{entry.sha256}" if entry.sha256 else None
    # pooch logs the hash of unpinned downloads at INFO; keep the console quiet.
    logging.getLogger("pooch").setLevel(logging.WARNING)
    return Path(
        pooch.retrieve(
            entry.url,
            known_hash=known_hash,
            fname=entry.filename,
            path=target_dir,
            progressbar=entry.sha256 is None,
        )
    )


def fetch(name: str, manifest: Manifest | None = None) -> Path:
    """Local path of manifest file ``name``, verified (mirror first, then download cache).

    See the module docstring for the lookup order and the errors raised.
    """
    return fetch_with_checksum(name, manifest)[0]


def fetch_with_checksum(name: str, manifest: Manifest | None = None) -> tuple[Path, str]:
    """Like :func:`fetch`, also returning the verified sha256 (hashing the file once)."""
    manifest = manifest if manifest is not None else load_manifest()
    entry = manifest[name]
    mirror = mirror_dir()
    mirror_file = mirror / entry.mirror_path if mirror is not None else None
    if mirror_file is not None and mirror_file.is_file():
        return mirror_file, verify_file(entry, mirror_file)

    target_dir = cache_dir("downloads") / name
    cached = target_dir / entry.filename
    moved: tuple[Path, DataChecksumError] | None = None
    if cached.is_file():
        try:
            return cached, verify_file(entry, cached)
        except DataChecksumError as err:
            moved = (_move_aside(cached), err)
    try:
        path = _download(entry, target_dir)
    except ValueError as err:
        if "hash" in str(err).lower():
            raise DataChecksumError(
                f"checksum mismatch for data file {entry.name!r} downloaded from {entry.url}: {err}"
            ) from err
        raise _not_found(entry, mirror_file, err, moved) from err
    except Exception as err:  # network errors come in many types (requests, ftplib, OSError)
        raise _not_found(entry, mirror_file, err, moved) from err
    if moved is not None:
        warnings.warn(
            f"the cached copy of data file {entry.name!r} failed its checksum; it was moved "
            f"aside to {moved[0]} and downloaded again from {entry.url}",
            stacklevel=2,
        )
    return path, verify_file(entry, path)


def _move_aside(path: Path) -> Path:
    """Rename a cached file that failed its check to ``<file>.corrupt`` (never delete it)."""
    target = path.with_name(path.name + ".corrupt")
    os.replace(path, target)
    return target


def _not_found(
    entry: DataFile,
    mirror_file: Path | None,
    err: Exception,
    moved: tuple[Path, DataChecksumError] | None = None,
) -> DataFileNotFoundError:
    looked = (
        f"mirror file {mirror_file} does not exist"
        if mirror_file is not None
        else f"${MIRROR_ENV} is not set (no local mirror searched)"
    )
    advice = f"Set {MIRROR_ENV} to a folder holding {entry.mirror_path}, or allow network access."
    if moved is not None:
        aside, check = moved
        return CorruptCacheError(
            f"data file {entry.name!r}: the cached copy fails its checksum ({check}); it was "
            f"moved aside to {aside}. A fresh download from {entry.url} was attempted and "
            f"failed ({type(err).__name__}: {err}); {looked}. {advice}"
        )
    return DataFileNotFoundError(
        f"data file {entry.name!r} ({entry.filename}) is not available: {looked}, and the "
        f"download from {entry.url} failed ({type(err).__name__}: {err}). {advice}"
    )


def file_checksums(names: Iterable[str], manifest: Manifest | None = None) -> dict[str, str]:
    """``{name: sha256}`` of the verified local copies, for provenance records."""
    manifest = manifest if manifest is not None else load_manifest()
    return {name: fetch_with_checksum(name, manifest)[1] for name in names}
