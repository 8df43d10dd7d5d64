"""What the Snakemake workflow (``workflow/Snakefile``) runs, read from moralkit's own sources.

(book: Methods › Workflow, methods/workflow.md.) The workflow decides nothing itself: the
chapters come from :func:`moralkit.book.list_chapters`, their models, layers and data from
``moralkit/profiles.yaml`` (:func:`moralkit.profiles.resolve_parameters`), and each job's GPU
count, memory and run time from the compute plan (:mod:`moralkit.compute_plan`, a floor above:
it reads what runs from here), whose table for the paper profile is on the Re-running page.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from moralkit.book.sources import ChapterSource, list_chapters
from moralkit.data.ground_truth import GROUND_TRUTH_FILES, ground_truth_names
from moralkit.data.unlabelled import unlabelled_files
from moralkit.layers import LayerSpec
from moralkit.notebooks import notebook_parameters
from moralkit.profiles import resolve_parameters

#: the chapters that extract activations (through ``ch.activations``): each of their models gets
#: an extraction job before them (a test checks the notebooks agree)
ACTIVATION_CHAPTERS: tuple[str, ...] = ("02", "03", "04", "05", "06", "07", "08", "11")
#: the steering evaluation's prompts (paper §5.1)
STEERING_FILES: tuple[str, ...] = ("flames-1k",)
#: the chapters that run the diagnostics' positive control (``valence_records``; a test checks
#: the notebooks agree) and the control's texts (moralkit.data.judged.JUDGED_FILE; listed here
#: so the workflow imports no pandas loaders)
CONTROL_CHAPTERS: tuple[str, ...] = ("02", "03", "04", "05")
CONTROL_FILES: tuple[str, ...] = ("social-chem-101-judged",)


# ---------------------------------------------------------------------- what a build runs
@lru_cache(maxsize=64)
def chapter_parameters(chapter_id: str, profile: str) -> dict:
    """The resolved parameters of one chapter under ``profile`` (as ``Chapter.start`` sees them)."""
    chapter = _chapter(chapter_id)
    return resolve_parameters(chapter.chapter_id, profile, list(notebook_parameters(chapter.path)))


def chapter_source(chapter_id: str) -> Path:
    """The chapter's notebook source (a workflow input: editing it re-runs the chapter)."""
    return _chapter(chapter_id).path


def _chapter(chapter_id: str) -> ChapterSource:
    for chapter in list_chapters():
        if chapter.chapter_id == chapter_id:
            return chapter
    raise ValueError(f"unknown chapter {chapter_id!r}; chapters: {chapter_ids()}")


def job_settings(chapter_id: str, profile: str, **fixed: object) -> str:
    """The chapter's resolved parameters as one string: a job's Snakemake ``params``, so a
    change in ``profiles.yaml`` that touches the chapter re-runs its jobs (and only those; a
    re-run whose cache entry is unchanged is a cache hit)."""
    params = {**chapter_parameters(chapter_id, profile), **fixed}
    return json.dumps({k: str(v) for k, v in sorted(params.items())})


def chapter_ids(only: Iterable[str] | None = None) -> list[str]:
    """The chapters a build runs (``notebooks/NN_*.md``), or those of ``only`` (ids or numbers)."""
    chapters = [c.chapter_id for c in list_chapters()]
    if not only:
        return chapters
    wanted = {_number_key(str(x).strip()) for x in only if str(x).strip()}
    picked = [c for c in chapters if c in wanted or c.split("_", 1)[0] in wanted]
    if len(picked) < len(wanted):
        raise ValueError(f"chapters {sorted(wanted)} not all found; chapters: {chapters}")
    return picked


def _number_key(key: str) -> str:
    """ "2" (a number that lost its zero on the command line) -> "02"."""
    return f"{int(key):02d}" if key.isdigit() else key


def reads_activations(chapter_id: str) -> bool:
    """Whether the chapter extracts activations (:data:`ACTIVATION_CHAPTERS`)."""
    return _chapter(chapter_id).chapter_id.split("_", 1)[0] in ACTIVATION_CHAPTERS


def trains_saes(chapter_id: str, profile: str) -> bool:
    """Whether the chapter trains SAEs (it has an ``sae_layers`` parameter)."""
    return chapter_parameters(chapter_id, profile).get("sae_layers") is not None


def chapter_models(chapter_id: str, profile: str) -> list[str]:
    """The models a chapter extracts activations of ([] when it reads none)."""
    if not reads_activations(chapter_id):
        return []
    return list(chapter_parameters(chapter_id, profile)["model"] or [])


def profile_models(profile: str, chapters: Iterable[str]) -> list[str]:
    """Every model the chapters extract, in profile order, each once."""
    return list(dict.fromkeys(m for c in chapters for m in chapter_models(c, profile)))


def extraction_chapter(model: str, profile: str, chapters: Iterable[str]) -> str:
    """The chapter whose settings the model's extraction job uses (the first that reads it).

    Chapters share records, layers, poolings, template and dtype through the profile, so the
    cache entry this chapter asks for serves the others (a subset of layers is read from it).
    """
    for chapter in chapters:
        if model in chapter_models(chapter, profile):
            return chapter
    raise ValueError(f"no chapter of profile {profile!r} reads model {model!r}")


def data_files(profile: str, chapters: Iterable[str]) -> list[str]:
    """Manifest names the chapters read: their ground truths' files, SAE texts, Flames (the
    steering chapter's prompts, whether or not the steering jobs run), the positive control's
    texts."""
    names: list[str] = []
    for chapter in chapters:
        params = chapter_parameters(chapter, profile)
        for key in ("ground_truth", "control_ground_truth"):
            if params.get(key):
                for truth in ground_truth_names(params[key]):
                    names.extend(GROUND_TRUTH_FILES[truth])
        if trains_saes(chapter, profile):
            names.extend(unlabelled_files())  # the SAE chapter's unlabelled texts
        if _steers(chapter, profile):
            names.extend(STEERING_FILES)
        if reads_control(chapter):
            names.extend(CONTROL_FILES)
    return list(dict.fromkeys(names))


def reads_control(chapter_id: str) -> bool:
    """Whether the chapter runs the diagnostics' positive control (:data:`CONTROL_CHAPTERS`)."""
    return _chapter(chapter_id).chapter_id.split("_", 1)[0] in CONTROL_CHAPTERS


def sae_chapter(profile: str) -> str | None:
    """The chapter whose settings train every SAE (the first that trains any), if one does."""
    return next((c for c in chapter_ids() if trains_saes(c, profile)), None)


def steering_chapter(profile: str) -> str | None:
    """The chapter that steers with the SAEs (the first with ``steer_layers``), if one does."""
    return next((c for c in chapter_ids() if _steers(c, profile)), None)


def _steers(chapter_id: str, profile: str) -> bool:
    return chapter_parameters(chapter_id, profile).get("steer_layers") is not None


def chapter_saes(chapter_id: str, profile: str) -> list[tuple[str, int]]:
    """``(model, layer)`` of every SAE a chapter trains or steers with (on its first model).

    A steering chapter needs its layers' SAEs before it starts; the workflow trains them with
    the SAE chapter's settings, so steering uses exactly that chapter's SAEs.
    """
    from moralkit.models.identity import model_depth  # imported here: it imports torch

    params = chapter_parameters(chapter_id, profile)  # layer parameters are LayerSpec values
    models = list(params.get("model") or [])
    if not models or not (trains_saes(chapter_id, profile) or _steers(chapter_id, profile)):
        return []
    depth = model_depth(models[0])
    if trains_saes(chapter_id, profile):
        layers = (params["layers"] or LayerSpec()).narrow(
            params["sae_layers"], depth, "layers", "sae_layers"
        )
    else:
        layers = params["steer_layers"].resolve(depth, name="steer_layers")
    return [(models[0], int(layer)) for layer in layers]


def sae_targets(profile: str, chapters: Iterable[str]) -> list[tuple[str, int]]:
    """``(model, layer)`` of every SAE the chapters train or steer with (one job each)."""
    return list(dict.fromkeys(t for c in chapters for t in chapter_saes(c, profile)))
