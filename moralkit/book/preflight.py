"""What ``moralkit run`` checks before a kernel starts, and what ``moralkit run --check`` prints.

Everything here is cheap next to a chapter and fails with a message naming the setting:

- the environment: ``MORALKIT_DATA_MIRROR`` must name a folder (made absolute once, here) and
  moralkit's cache (``MORALKIT_CACHE``) must be writable;
- the parameters, resolved as ``Chapter.start`` resolves them (profile, names, types, choices);
- every input file a parameter names (a user's ground truth), read and validated in full, with
  its sha256 as the provenance will record it;
- the output folder (:mod:`moralkit.book.output_dirs`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from moralkit.book.output_dirs import check_output_dir, describe_output_dir
from moralkit.book.sources import ChapterSource
from moralkit.data.fetch import CACHE_ENV, MIRROR_ENV, DataMirrorError, default_cache_dir
from moralkit.data.fetch import resolve_mirror as _resolve_mirror
from moralkit.data.ground_truth import ground_truth_names
from moralkit.data.user_ground_truth import load_user_records
from moralkit.io import ensure_writable, sha256_of
from moralkit.notebooks import absolute_path_variables, notebook_parameters
from moralkit.profiles import resolve_parameters
from moralkit.provenance import to_jsonable


class PreflightError(ValueError):
    """A setting that would make the run fail: refused before any kernel starts (exit 2)."""


@dataclass(frozen=True)
class InputFile:
    """A user's file a parameter names, validated."""

    parameter: str
    path: str
    sha256: str
    summary: str


def check_environment() -> dict[str, str | None]:
    """The data mirror and the cache, checked; returns their absolute paths.

    Relative path variables become absolute (the kernel runs in another folder).
    """
    try:
        mirror = _resolve_mirror()
    except DataMirrorError as err:
        raise PreflightError(str(err)) from None
    cache = default_cache_dir()
    named = f"{CACHE_ENV}={os.environ[CACHE_ENV]}" if os.environ.get(CACHE_ENV) else (
        f"moralkit's cache {cache} ({CACHE_ENV} is unset)"
    )  # fmt: skip
    try:
        ensure_writable(cache, "")
    except PermissionError as err:
        reason = err.__cause__.strerror if isinstance(err.__cause__, OSError) else str(err)
        raise PreflightError(
            f"{named} is not writable ({reason}); moralkit keeps downloads, record tables and "
            f"activations there. Set {CACHE_ENV} to a writable folder"
        ) from None
    os.environ.update(absolute_path_variables())
    return {MIRROR_ENV: str(mirror) if mirror else None, CACHE_ENV: str(cache.resolve())}


def resolved_parameters(
    chapter: ChapterSource, profile: str, parameters: Mapping[str, object]
) -> dict[str, object]:
    """Every parameter of the chapter as ``Chapter.start`` will see it (profile + overrides)."""
    names = notebook_parameters(chapter.path)
    return resolve_parameters(chapter.chapter_id, profile, names, **parameters)


def check_input_files(resolved: Mapping[str, object]) -> list[InputFile]:
    """Read and validate every user file the parameters name (errors: file, row, column)."""
    found = []
    value = resolved.get("ground_truth")
    for name in ground_truth_names(value) if value else []:
        if not Path(name).is_absolute():
            continue  # a registered ground truth: its files are fetched and verified by name
        records = load_user_records(name)
        found.append(
            InputFile(
                "ground_truth",
                name,
                sha256_of(name),
                f"{len(records)} records ({records.provenance['schema']} schema, "
                f"{'with' if records.has_typicality else 'no'} typicality)",
            )
        )
    return found


def check_run(
    chapter: ChapterSource, profile: str, parameters: Mapping[str, object], output: Path | None
) -> dict[str, object]:
    """All checks of ``moralkit run --check``; returns what the run's provenance would record."""
    environment = check_environment()
    resolved = resolved_parameters(chapter, profile, parameters)
    files = check_input_files(resolved)
    if output is not None:
        check_output_dir(output)
    return {
        "chapter": chapter.chapter_id,
        "source": f"{chapter.path} (sha256 {sha256_of(chapter.path)[:16]})",
        "profile": profile,
        "params": to_jsonable(resolved),
        "input_files": [
            {"parameter": f.parameter, "path": f.path, "sha256": f.sha256, "read": f.summary}
            for f in files
        ],
        "environment": environment,
        "output": describe_output_dir(output) if output is not None else "the book's copy",
    }
