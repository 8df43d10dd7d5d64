"""Executing one chapter notebook with papermill, after every check that can fail early.

Parameters are validated (names, types, choices) and the output folder is checked before a
kernel starts; the kernel then runs with the environment of :mod:`moralkit.notebooks`.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import papermill as pm
from papermill.exceptions import PapermillExecutionError

from moralkit.book.kernel import chapter_kernel
from moralkit.book.layout import RUN_RECORD
from moralkit.book.output_dirs import (
    PreparedFolder,
    check_output_dir,
    output_lock,
    prepare_run_dir,
    record_output_files,
    remove_moralkit_output,
)
from moralkit.book.sources import ChapterSource
from moralkit.io import sha256_of
from moralkit.notebooks import (
    NOTEBOOK_SOURCE_ENV,
    OUTPUT_DIR_ENV,
    PARAMETERS_ENV,
    absolute_path_variables,
    notebook_parameters,
    read_notebook,
)
from moralkit.parameters import to_cell_value
from moralkit.profiles import resolve_parameters
from moralkit.provenance import to_jsonable, write_json

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a chapter: the kernel was left, the output folder marked or removed."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.notebook: Path | None = None  # the partial executed notebook, if one was written


@dataclass
class ChapterRun:
    """The outcome of executing one chapter."""

    chapter: ChapterSource
    ok: bool
    notebook: Path
    output_dir: Path
    wall_time_s: float
    error: str = ""
    #: "cold" (some activations extracted), "warm" (all cached) or "" (none read)
    caches: str = ""
    #: "ok", "failed" or "interrupted" (what run.json records)
    status: str = ""
    started: str = ""
    #: files of the user's found in the output folder and left in place
    kept: list[str] = field(default_factory=list)


def check_parameters(
    chapter: ChapterSource, profile: str, parameters: Mapping[str, object]
) -> dict[str, object]:
    """The user's parameters validated and converted, or a ``ValueError`` naming the problem.

    Runs the same resolution as ``Chapter.start`` (profile, names, types, choices), so a bad
    value fails here rather than in a kernel minutes later. Returns the overrides in the
    literal form a notebook cell and ``$MORALKIT_PARAMETERS`` carry.
    """
    names = notebook_parameters(chapter.path)
    resolved = resolve_parameters(chapter.chapter_id, profile, names, **parameters)
    return {name: to_cell_value(resolved[name]) for name in parameters}


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _kernel_environment(chapter: ChapterSource, output_dir: Path, profile: str, params) -> dict:
    return {
        **absolute_path_variables(),  # the kernel runs in another folder
        OUTPUT_DIR_ENV: str(output_dir),
        NOTEBOOK_SOURCE_ENV: str(chapter.path.resolve()),
        PARAMETERS_ENV: json.dumps(to_jsonable(params)),
        "MORALKIT_PROFILE": profile,
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        # progress bars are for interactive use; in an executed page they are noise, and
        # tqdm.auto's "IProgress not found" warning (no ipywidgets) with them
        "TQDM_DISABLE": "1",
        "PYTHONWARNINGS": ",".join(
            x for x in (os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found") if x
        ),
    }


def execute_chapter(
    chapter: ChapterSource,
    notebook_path: str | Path,
    output_dir: str | Path,
    profile: str,
    parameters: Mapping[str, object] | None = None,
    cwd: str | Path | None = None,
    kernel_name: str = "python3",
) -> ChapterRun:
    """Execute one chapter with papermill.

    ``output_dir`` becomes ``MORALKIT_OUTPUT_DIR`` (tables, figures, provenance.json); it must
    be new, empty or written by moralkit before, and no other run may hold it
    (:mod:`moralkit.book.output_dirs`: moralkit's earlier files are replaced, the user's kept).
    ``cwd`` (default: the notebook's folder) is where the kernel runs, so the download links a
    chapter prints are relative to the executed notebook. Bad parameters raise ``ValueError``
    before a kernel starts. The executed notebook is written even when a cell fails; the
    failing cell and its traceback are returned in ``ChapterRun.error``. Writes ``run.json``
    (status, timing, cold or warm caches) into ``output_dir``. Ctrl-C raises
    :class:`RunInterrupted` after marking the folder's run.json "interrupted" (or removing the
    folder, when this run created it).
    """
    params = check_parameters(chapter, profile, dict(parameters or {}))
    notebook_path = Path(notebook_path).resolve()
    output_dir = check_output_dir(output_dir)  # refuses before anything is made or locked
    cwd = Path(cwd or notebook_path.parent).resolve()
    earlier = _recorded_times(output_dir, profile)
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        with output_lock(output_dir):
            prepared = prepare_run_dir(output_dir)
            run = _run_locked(chapter, notebook_path, prepared, profile, params, cwd, kernel_name)
            _write_run_record(run, profile, params, earlier)
            record_output_files(prepared)
    except RunInterrupted as stop:
        removed = created and remove_moralkit_output(output_dir)
        where = "removed" if removed else f"marked interrupted in its {RUN_RECORD}"
        stop.message = f"{stop.message}; output folder {output_dir} {where}"
        stop.notebook = notebook_path
        raise
    return run


def _run_locked(
    chapter: ChapterSource,
    notebook_path: Path,
    prepared: PreparedFolder,
    profile: str,
    params: dict,
    cwd: Path,
    kernel_name: str,
) -> ChapterRun:
    """Run the chapter into a prepared, locked output folder (Ctrl-C: :class:`RunInterrupted`)."""
    output_dir = prepared.path
    cwd.mkdir(parents=True, exist_ok=True)
    notebook_path.parent.mkdir(parents=True, exist_ok=True)
    nb = read_notebook(chapter.path)
    nb.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": "Python 3",
        "language": "python",
    }
    # the injected cell shows what the parameters cell declares; the rest (dtype, template...)
    # reaches Chapter.start through $MORALKIT_PARAMETERS
    cell_names = set(notebook_parameters(chapter.path))
    injected = {"profile": profile, **{k: v for k, v in params.items() if k in cell_names}}
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.perf_counter()
    run = ChapterRun(chapter, False, notebook_path, output_dir, 0.0, started=started)
    run.kept = list(prepared.kept)
    try:
        with _environment(**_kernel_environment(chapter, output_dir, profile, params)):
            run.error = _papermill(nb, notebook_path, injected, cwd, kernel_name)
    except KeyboardInterrupt:
        run.wall_time_s, run.status = time.perf_counter() - t0, "interrupted"
        run.error = "interrupted (Ctrl-C) before the chapter finished"
        _write_run_record(run, profile, params, {})
        record_output_files(prepared)
        raise RunInterrupted(
            f"{chapter.chapter_id} interrupted after {run.wall_time_s:.0f} s; nothing finished"
        ) from None
    run.wall_time_s = time.perf_counter() - t0
    run.ok = not run.error
    run.status = "ok" if run.ok else "failed"
    return run


def _papermill(nb, notebook_path: Path, parameters: dict, cwd: Path, kernel_name: str) -> str:
    """Run the notebook; returns the error ("" when every cell ran). Ctrl-C propagates."""
    try:
        with chapter_kernel(kernel_name, cwd) as km:
            pm.execute_notebook(
                nb,
                str(notebook_path),
                parameters=parameters,
                cwd=str(cwd),
                kernel_name=kernel_name,
                progress_bar=False,
                km=km,
            )
    except pm.PapermillExecutionError as exc:
        return describe_failure(exc)
    except Exception as exc:  # kernel died, unreadable notebook...: same treatment
        return f"{type(exc).__name__}: {exc}"
    return ""


def cache_state(provenance: Mapping) -> str:
    """``"cold"`` when the run added entries to moralkit's cache (it computed something it
    caches: activations, SAEs, generations, scores, downloads), ``"warm"`` when it added none.

    Provenance written before ``cache_writes`` existed falls back on the activations' cache
    hits; ``""`` when neither tells.
    """
    if provenance.get("cache_writes") is not None:
        return "cold" if provenance["cache_writes"] else "warm"
    hits = [m["cache_hit"] for m in provenance.get("models") or [] if "cache_hit" in m]
    if not hits:
        return ""
    return "warm" if all(hits) else "cold"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded_times(output_dir: Path, profile: str) -> dict[str, float]:
    """The cold and warm wall times an earlier run under this profile recorded."""
    record = _read_json(output_dir / RUN_RECORD)
    if record.get("profile") != profile:
        return {}
    return {k: float(v) for k, v in (record.get("times") or {}).items() if v is not None}


def _write_run_record(
    run: ChapterRun, profile: str, params: Mapping[str, object], earlier: Mapping[str, float]
) -> None:
    """Write run.json and set the run's cache state."""
    run.caches = cache_state(_read_json(run.output_dir / "provenance.json"))
    times = dict(earlier)
    if run.caches and run.ok:
        times[run.caches] = round(run.wall_time_s, 1)
    write_json(
        {
            "chapter": run.chapter.chapter_id,
            "title": run.chapter.title,
            "profile": profile,
            "parameters": to_jsonable(params),
            "status": run.status or ("ok" if run.ok else "failed"),
            "started": run.started,
            "wall_time_s": round(run.wall_time_s, 1),
            "caches": run.caches,
            "times": times,
            "source_sha": sha256_of(run.chapter.path)[:16],
            "input_files": _input_files(params),
            "error": run.error,
        },
        run.output_dir / RUN_RECORD,
    )


def _input_files(params: Mapping[str, object]) -> dict[str, str]:
    """``{path: sha256}`` of the user's files that ``ground_truth`` and ``benchmarks`` name
    (their rows were checked before the run)."""
    named = [params.get("ground_truth"), params.get("benchmarks")]
    paths = [x for v in named for x in ([v] if isinstance(v, str) else v or [])]
    return {p: sha256_of(p) for p in dict.fromkeys(paths) if Path(p).is_absolute()}


def describe_failure(exc: PapermillExecutionError) -> str:
    """The failing cell, its traceback and the error, without terminal colour codes."""
    trace = "\n".join(exc.traceback or [])
    text = f"cell [{exc.exec_count}] failed:\n{exc.source}\n\n{trace}\n{exc.ename}: {exc.evalue}"
    return _ANSI_RE.sub("", text)
