"""Output folders: what moralkit may replace in them, who holds them, and an interrupted run.

A chapter's output folder is cleared of moralkit's own files before each run, so that stale
figures never survive into a new page, and nothing else is touched:

- a folder moralkit made carries the marker ``.moralkit-output``, a JSON list of the files the
  last run wrote with their sha256 (:func:`record_output_files`). Those files are replaced;
  a file the user added is kept (and named); a file moralkit wrote that has been changed
  since (notes typed into the executed notebook) makes the run refuse, naming it;
- a marker from an older moralkit (plain text, no list) lets moralkit replace the files of its
  own layout (``tables/``, ``figures/``, ``run.json``, ``provenance.json``, ``claims.json``,
  executed ``*.ipynb``); anything else is kept;
- a folder that exists, holds files and has no marker belongs to the user: it is refused.

One run at a time: :func:`output_lock` holds an exclusive lock on the folder for the whole run
(the operating system drops it when the process dies, even killed), and a second run into the
same folder is refused with the first one's process id.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from moralkit.book.layout import RUN_RECORD
from moralkit.io import atomic_write_text, sha256_of
from moralkit.notebooks import OUTPUT_MARKER

#: the lock a run holds on its output folder (kept in the folder; its content is the pid)
RUN_LOCK = ".moralkit-run.lock"
_OWN = (OUTPUT_MARKER, RUN_LOCK)
#: what an older moralkit wrote into an output folder (a marker without a file list)
_LEGACY_FILES = ("run.json", "provenance.json", "claims.json")
_LEGACY_DIRS = ("tables", "figures")


class OutputFolderError(ValueError):
    """An output folder moralkit may not write into (it is left untouched)."""


@dataclass
class PreparedFolder:
    """An output folder ready for a run: whether this run created it, and the user's files."""

    path: Path
    created: bool
    kept: list[str] = field(default_factory=list)  # the user's files, relative, left in place


def is_moralkit_output(folder: Path) -> bool:
    """Whether moralkit wrote ``folder``: it has the marker, or (older builds) a run record."""
    if (folder / OUTPUT_MARKER).is_file():
        return True
    record = folder / RUN_RECORD
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"chapter", "source_sha", "status"} <= set(data)


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, '/'-separated), moralkit's marker and lock aside."""
    found = (p for p in folder.rglob("*") if p.is_file() or p.is_symlink())
    return sorted(p.relative_to(folder).as_posix() for p in found if p.name not in _OWN)


def written_files(folder: Path) -> dict[str, str] | None:
    """``{file: sha256}`` the marker lists (None: an older marker, or none at all)."""
    try:
        data = json.loads((folder / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = data.get("files") if isinstance(data, dict) else None
    return dict(files) if isinstance(files, dict) else None


def _is_legacy_output(name: str) -> bool:
    if "/" not in name:
        return name in _LEGACY_FILES or name.endswith(".ipynb")
    return name.split("/", 1)[0] in _LEGACY_DIRS


def _sort_files(folder: Path) -> tuple[list[str], list[str], list[str]]:
    """(moralkit's unchanged files, moralkit's changed files, the user's files) in ``folder``."""
    listed = written_files(folder)
    ours, changed, theirs = [], [], []
    for name in _files(folder):
        if listed is None:
            (ours if _is_legacy_output(name) else theirs).append(name)
        elif name not in listed:
            theirs.append(name)
        elif (folder / name).is_file() and sha256_of(folder / name) == listed[name]:
            ours.append(name)
        else:
            changed.append(name)
    return ours, changed, theirs


def _remove(folder: Path, names: list[str]) -> None:
    """Delete moralkit's files, then the folders that held them once they are empty."""
    parents = set()
    for name in names:
        (folder / name).unlink(missing_ok=True)
        parents.update(Path(name).parents)
    for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if parent.parts and not any((folder / parent).iterdir()):
            (folder / parent).rmdir()


def _write_marker(folder: Path, files: dict[str, str]) -> None:
    record = {
        "note": "Written by moralkit. A new run replaces the files listed here (unless they "
        "were changed since) and keeps every other file.",
        "files": files,
    }
    atomic_write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", folder / OUTPUT_MARKER)


def check_output_dir(folder: str | Path) -> Path:
    """``folder`` resolved, or :class:`OutputFolderError` if a run may not write there.

    Refused: a path that is not a folder, a non-empty folder moralkit did not write, and one
    where moralkit's own files were changed since it wrote them. Nothing is changed.
    """
    folder = Path(folder).resolve()
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"output folder {folder} exists and is not a folder")
    if not folder.is_dir() or not _files(folder):
        return folder
    if not is_moralkit_output(folder):
        raise OutputFolderError(
            f"output folder {folder} already holds files that moralkit did not write "
            f"(no {OUTPUT_MARKER} marker); choose a new or empty folder with -o"
        )
    changed = _sort_files(folder)[1]
    if changed:
        raise OutputFolderError(
            f"output folder {folder}: {len(changed)} file(s) moralkit wrote were changed "
            f"since ({', '.join(changed[:5])}); a new run would replace them, so it stops. "
            "Move them elsewhere or choose another folder with -o"
        )
    return folder


def prepare_output_dir(folder: str | Path) -> Path:
    """An output folder at ``folder`` cleared of moralkit's earlier files and marked.

    See the module docstring for what is replaced, kept or refused; :func:`prepare_run_dir`
    also says which files were kept and whether the folder is new.
    """
    return prepare_run_dir(folder).path


def prepare_run_dir(folder: str | Path) -> PreparedFolder:
    """:func:`prepare_output_dir`, telling whether it created the folder and what it kept."""
    folder = check_output_dir(folder)
    created = not folder.exists() or not any(folder.iterdir())
    folder.mkdir(parents=True, exist_ok=True)
    ours, _, theirs = _sort_files(folder)
    _remove(folder, ours)
    _write_marker(folder, {})
    return PreparedFolder(folder, created, theirs)


def record_output_files(prepared: PreparedFolder) -> dict[str, str]:
    """List what the run wrote (every file but the user's kept ones) in the folder's marker."""
    folder = prepared.path
    files = {n: sha256_of(folder / n) for n in _files(folder) if n not in set(prepared.kept)}
    _write_marker(folder, files)
    return files


def remove_moralkit_output(folder: Path) -> bool:
    """Delete ``folder`` if moralkit wrote it and it holds nothing of the user's."""
    if not folder.is_dir() or not is_moralkit_output(folder):
        return False
    ours, changed, theirs = _sort_files(folder)
    if changed or theirs:
        _remove(folder, ours)
        return False
    shutil.rmtree(folder)
    return True


@contextmanager
def output_lock(folder: Path) -> Iterator[None]:
    """Hold ``folder`` for one run; :class:`OutputFolderError` if another run holds it.

    ``folder`` must exist. The lock file stays in the folder (an unlocked file means nothing).
    """
    import fcntl  # POSIX; moralkit runs on Linux and macOS

    handle = open(folder / RUN_LOCK, "a+")  # noqa: SIM115 - closed in finally
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise OutputFolderError(
                f"output folder {folder} is in use by another moralkit run (process {holder}); "
                "wait for it to finish or choose another folder with -o"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


def describe_output_dir(folder: str | Path) -> str:
    """What a run would do with ``folder`` (after :func:`check_output_dir` accepted it)."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        return f"{folder} (new folder)"
    if not _files(folder):
        return f"{folder} (empty folder)"
    ours, _, theirs = _sort_files(folder)
    kept = f"; {len(theirs)} file(s) of yours kept: {', '.join(theirs[:5])}" if theirs else ""
    return f"{folder} (an earlier moralkit run: its {len(ours)} file(s) replaced{kept})"
