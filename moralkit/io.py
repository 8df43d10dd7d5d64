"""Atomic file and folder writes: a reader never sees a half-written cache entry or output."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
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


WRITERS_LOCK = ".moralkit-writers.lock"  # in each folder written with locked=True
_TEMP_SUFFIXES = (".tmp", ".del")  # what atomic_directory and remove_directory leave if killed


@contextmanager
def writers_lock(folder: str | Path, exclusive: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold a lock on ``folder``'s writers file; yields whether it was acquired.

    Writers of temporary entries hold it shared; :func:`clean_stale_temporaries` takes it
    exclusive without waiting, so it only runs when no writer in any process is mid-write. The
    kernel drops the lock of a killed process (even SIGKILL), so a crash never blocks cleaning.
    Without ``fcntl`` (Windows) nothing is locked: it yields True for writers and False for
    the exclusive request, so temporaries are then never cleaned (rather than cleaned live).
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield not exclusive
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / WRITERS_LOCK, "a+b")  # noqa: SIM115 - closed in finally
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(handle, mode if wait else mode | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def clean_stale_temporaries(folder: str | Path) -> int:
    """Remove the temp folders that killed writers left in ``folder``; returns how many.

    Only runs when no writer holds :func:`writers_lock` (otherwise does nothing: a later call
    cleans up), so every writer into ``folder`` must write with ``locked=True``. Never raises
    for an unreadable or read-only folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    try:
        with writers_lock(folder, exclusive=True, wait=False) as acquired:
            if not acquired:
                return 0
            stale = [
                p
                for p in folder.iterdir()
                if p.name.startswith(".") and p.is_dir() and p.name.endswith(_TEMP_SUFFIXES)
            ]
            for path in stale:
                shutil.rmtree(path, ignore_errors=True)
            return len(stale)
    except OSError:
        return 0


@contextmanager
def atomic_directory(path: str | Path, locked: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; rename it onto ``path`` on success.

    If the block raises, the temporary folder is deleted and ``path`` is untouched. If ``path``
    already exists when the block finishes (another process won the race), the existing folder
    is kept and the new one discarded: both were built from the same inputs. A process killed
    inside the block leaves ``.<name>.*.tmp``; with ``locked`` the write holds
    :func:`writers_lock`, so that :func:`clean_stale_temporaries` can remove such leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with writers_lock(path.parent) if locked else nullcontext():
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


def remove_directory(path: str | Path, locked: bool = False) -> None:
    """Delete a folder so that readers never see it half-deleted (rename away, then remove).

    ``locked``: hold :func:`writers_lock` meanwhile (folders cleaned by
    :func:`clean_stale_temporaries`).
    """
    path = Path(path)
    if not path.exists():
        return
    with writers_lock(path.parent) if locked else nullcontext():
        doomed = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".del"))
        try:
            os.rename(path, doomed / path.name)
        except FileNotFoundError:  # another process removed it first
            pass
        shutil.rmtree(doomed, ignore_errors=True)


def ensure_writable(folder: str | Path, hint: str) -> Path:
    """Create ``folder`` and prove it writable by writing a probe file; else PermissionError.

    Checks by doing (not ``os.access``, which says yes to root on a read-only mount). ``hint``
    is appended to the message, e.g. which setting chooses the folder.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise PermissionError(f"cannot write to {folder} ({err.strerror or err}); {hint}") from err
    return folder
