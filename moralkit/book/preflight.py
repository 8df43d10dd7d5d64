"""What ``moralkit run`` checks before a kernel starts, and what ``moralkit run --check`` prints.

Everything here is cheap next to a chapter and fails with a message naming the setting:

- the environment: ``MORALKIT_DATA_MIRROR`` must name a folder (made absolute once, here) and
  moralkit's cache (``MORALKIT_CACHE``) must be writable;
- the parameters, resolved as ``Chapter.start`` resolves them (profile, names, types, choices);
- every input file a parameter names (a user's ground truth, benchmark files), read and
  validated in full, with its sha256 (the ground truth's goes into provenance.json, every
  file's into run.json);
- settings that depend on more than their type: ``judge=environment`` needs the judge's
  endpoint variables, and every layer parameter must fit every model's depth;
- the output folder (:mod:`moralkit.book.output_dirs`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from moralkit.book.output_dirs import check_output_dir, describe_output_dir
from moralkit.book.sources import ChapterSource
from moralkit.data.ground_truth import ground_truth_names
from moralkit.data.user_ground_truth import load_user_records
from moralkit.evaluation.schema import user_benchmarks
from moralkit.io import ensure_writable, sha256_of
from moralkit.layers import LayerSpec, LayerSpecError
from moralkit.notebooks import absolute_path_variables, notebook_parameters
from moralkit.parameters import is_layer_parameter
from moralkit.paths import CACHE_ENV, MIRROR_ENV, DataMirrorError, cache_root, resolve_mirror
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
        mirror = resolve_mirror()
    except DataMirrorError as err:
        raise PreflightError(str(err)) from None
    cache = cache_root()
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
    for bench, path in zip(user_benchmarks(resolved.get("benchmarks") or []),
                           resolved.get("benchmarks") or [], strict=True):  # fmt: skip
        summary = f"{len(bench)} rows ({bench.schema} schema), named {bench.name!r}"
        found.append(InputFile("benchmarks", path, sha256_of(path), summary))
    return found


def check_judge(resolved: Mapping[str, object]) -> None:
    """``judge=environment`` needs the endpoint's variables, as the judge will read them."""
    if resolved.get("judge") != "environment":
        return
    from moralkit.evaluation import judge

    model = os.environ.get(judge.MODEL_ENV)
    if model and (model.startswith(judge._INSPECT_PROVIDERS) or os.environ.get(judge.BASE_URL_ENV)):
        return
    missing = judge.MODEL_ENV if not model else judge.BASE_URL_ENV
    raise PreflightError(
        f"parameter judge='environment': ${missing} is not set. The judge is the endpoint that "
        f"${judge.MODEL_ENV}, ${judge.BASE_URL_ENV} and ${judge.API_KEY_ENV} name (a model id "
        "with an inspect provider, e.g. openai/gpt-4.1-mini, needs no base URL); or use "
        "-p judge scripted (a local demonstration)"
    )


def check_layers(resolved: Mapping[str, object], given: Mapping[str, object]) -> None:
    """Every layer parameter the user gave resolves for every model's depth (the profile's own
    values are left to the chapter, which may not read them; so is a model whose depth cannot
    be read here)."""
    names = [n for n in given if is_layer_parameter(n) and resolved.get(n) is not None]
    if not names:
        return
    from moralkit.models.identity import model_depth  # loads torch: only when needed

    for model in resolved.get("model") or []:
        try:
            depth = model_depth(model)
        except Exception:  # unknown or unreachable here: the chapter reports it
            continue
        for name in names:
            try:
                LayerSpec.parse(resolved[name], name=name).resolve(depth)
            except LayerSpecError as err:
                problem = str(err).split(": ", 1)[-1]
                raise PreflightError(
                    f"parameter {name}={to_jsonable(resolved[name])!r} does not fit model "
                    f"{model}: {problem}"
                ) from None


def check_run(
    chapter: ChapterSource, profile: str, parameters: Mapping[str, object], output: Path | None
) -> dict[str, object]:
    """All checks of ``moralkit run --check``; returns what the run's provenance would record."""
    environment = check_environment()
    resolved = resolved_parameters(chapter, profile, parameters)
    files = check_input_files(resolved)
    check_judge(resolved)
    check_layers(resolved, parameters)
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
