"""What the Snakemake workflow (``workflow/Snakefile``) runs, read from moralkit's own sources.

(book: Methods › Workflow, methods/workflow.md.) The workflow decides nothing itself: the
chapters come from :func:`moralkit.book.list_chapters`, their models, layers and data from
``moralkit/profiles.yaml`` (:func:`moralkit.profiles.resolve_parameters`), and each job's GPU
count, memory and run time from the model registry's parameter counts
(:mod:`moralkit.models.registry`). :func:`compute_table` turns the same numbers into the
paper profile's compute estimate on the Re-running page.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from moralkit.book.sources import ChapterSource, list_chapters
from moralkit.data.ground_truth import GROUND_TRUTH_FILES, ground_truth_names
from moralkit.data.unlabelled import unlabelled_files
from moralkit.layers import LayerSpec
from moralkit.models.registry import find_model_spec
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
_BYTES_PER_PARAM = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0}


@dataclass(frozen=True)
class ClusterConfig:
    """How model size becomes a job's resources; every number here is an assumption to adapt.

    ``gpu_memory_gb`` is one GPU's memory; a model needs ``weight_overhead`` × its weights plus
    ``activation_headroom_gb``; host memory is ``host_factor`` × weights plus ``host_base_gb``.
    """

    gpu_memory_gb: float = 80.0
    weight_overhead: float = 1.2
    activation_headroom_gb: float = 4.0
    host_factor: float = 1.25
    host_base_gb: float = 16.0
    min_runtime_min: int = 30


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


# ---------------------------------------------------------------------- resources
def sae_gpus(chapter_id: str, profile: str) -> int:
    """GPUs of an SAE job: one when the chapter runs on a GPU (the SAE fits on one)."""
    return 0 if chapter_parameters(chapter_id, profile)["device"] == "cpu" else 1


def weights_gb(model: str, dtype: str = "bfloat16") -> float:
    """Size of the model's weights in GB (registry parameter count × bytes per parameter)."""
    spec = find_model_spec(model)
    if spec is None or not spec.params_b:
        return 1.0  # tiny test models and unknown folders: a token amount
    return spec.params_b * _BYTES_PER_PARAM[dtype]


def model_resources(
    model: str, dtype: str, device: str, cluster: ClusterConfig = ClusterConfig()
) -> dict[str, int]:
    """Snakemake resources of a job that loads ``model``: ``gpus``, ``mem_mb``, ``gpu_mem_gb``.

    CPU jobs (``device="cpu"``) ask for no GPU.
    """
    weights = weights_gb(model, dtype)
    need = weights * cluster.weight_overhead + cluster.activation_headroom_gb
    gpus = 0 if device == "cpu" else max(1, math.ceil(need / cluster.gpu_memory_gb))
    base = cluster.host_base_gb  # a GPU node's host side (loading, CUDA context)
    return {
        "gpus": gpus,
        "gpu_mem_gb": math.ceil(need) if gpus else 0,
        "mem_mb": int(1024 * math.ceil(weights * cluster.host_factor + (base if gpus else 2))),
    }


def extraction_runtime_min(
    model: str, n_texts: int, cluster: ClusterConfig = ClusterConfig()
) -> int:
    """Wall-clock minutes to ask for an extraction job: the estimate × 3, at least the minimum."""
    hours = extraction_gpu_hours(model, n_texts)
    return max(cluster.min_runtime_min, math.ceil(hours * 60 * 3))


# ---------------------------------------------------------------------- compute estimate
@dataclass(frozen=True)
class ComputeAssumptions:
    """The numbers behind :func:`compute_table`; each is an assumption, stated once here.

    ``gpu_tflops`` is a data-centre GPU's dense bf16 peak and ``gpu_utilisation`` the fraction
    short-prompt inference and SAE training reach; ``decode_tokens_per_s`` is one GPU's
    batched sampling rate for an 8B model (generation is memory-bound, not FLOP-bound).
    ``cpu_gflops`` is the rate moralkit's extraction reached on this machine's CPU
    (:func:`measured_cpu_gflops`), which turns the same FLOP counts into CPU hours.
    """

    n_records: int = 16_315  # the paper's stratified diagnostic subset (paper §1.5)
    mean_prompt_tokens: int = 16  # "<action> is morally": short actions (max 128)
    gpu_tflops: float = 989.0  # H100 SXM dense bf16 peak
    gpu_utilisation: float = 0.25
    decode_tokens_per_s: float = 1500.0
    sae_vectors: int = 200_000
    sae_expansion: int = 16
    sae_epochs: int = 200
    sae_layers: int = 36
    finetune_vectors: int = 13_000
    finetune_epochs: int = 50
    flames_prompts: int = 1_000
    new_tokens: int = 512
    load_gb_per_s: float = 1.0  # reading weights from a shared file system into GPUs
    cpu_gflops: float = 0.0  # 0: not measured; the CPU column is left out


def extraction_gpu_hours(
    model: str, n_texts: int, assume: ComputeAssumptions = ComputeAssumptions()
) -> float:
    """Hours of one extraction: loading the bf16 weights, then 2 × active parameters × tokens
    at the assumed GPU rate (wall-clock; multiply by the job's GPUs for GPU hours)."""
    load = weights_gb(model) / assume.load_gb_per_s / 3600.0
    return load + _hours(extraction_flops(model, n_texts, assume), assume)


def extraction_flops(model: str, n_texts: int, assume: ComputeAssumptions) -> float:
    """Forward FLOPs of extracting ``n_texts`` prompts (2 per active parameter per token)."""
    spec = find_model_spec(model)
    active = (spec.active_params_b or spec.params_b) if spec else 0.0
    return 2.0 * active * 1e9 * n_texts * assume.mean_prompt_tokens


def _hours(flops: float, assume: ComputeAssumptions) -> float:
    return flops / (assume.gpu_tflops * 1e12 * assume.gpu_utilisation) / 3600.0


def _cpu_hours(flops: float, assume: ComputeAssumptions) -> float | None:
    return flops / (assume.cpu_gflops * 1e9) / 3600.0 if assume.cpu_gflops > 0 else None


def measured_cpu_gflops(model: str = "smollm2-135m", n_texts: int = 200) -> float:
    """GFLOP/s moralkit's extraction reaches on this machine's CPU (real tokens, all layers).

    Loads ``model`` (an offline registry model) and extracts ``n_texts`` short prompts.
    """
    import time

    from moralkit.activations import DEFAULT_TEMPLATE, extract_activations
    from moralkit.models import load_model

    loaded = load_model(model)
    texts = [f"helping friend number {i} move house" for i in range(n_texts)]
    prompts = [DEFAULT_TEMPLATE.format(action=t) for t in texts]
    tokens = sum(len(ids) for ids in loaded.tokenizer(prompts)["input_ids"])
    start = time.perf_counter()
    extract_activations(loaded, texts, "all", ("mean",), progress=False)
    seconds = time.perf_counter() - start
    return 2.0 * find_model_spec(model).params_b * 1e9 * tokens / seconds / 1e9


def _stage(stage, unit, jobs, gpus, gpu_mem, hours_each, cpu_hours_each, note) -> dict:
    return {
        "stage": stage,
        "one job per": unit,
        "jobs": jobs,
        "GPUs per job": gpus,
        "GPU memory per job (GB)": round(gpu_mem),
        "GPU hours (estimate)": hours_each * max(gpus, 1) * jobs if gpus else 0.0,
        "CPU hours at the measured rate (estimate)": None
        if cpu_hours_each is None
        else cpu_hours_each * jobs,
        "basis": note,
    }


def compute_table(
    models: Iterable[str],
    steered_layers: int = 36,
    strengths: int = 1,
    assume: ComputeAssumptions = ComputeAssumptions(),
    sae_model: str = "qwen3-8b",
) -> pd.DataFrame:
    """GPU memory and hours per stage of the paper profile: an ESTIMATE from FLOP counts.

    Extraction: one row per model (2 × active parameters × prompt tokens). SAE pretraining:
    12 × d × 16d FLOPs per vector and epoch (forward and backward, encoder and decoder).
    Generation: decode-rate bound (2 arms × layers × strengths + the baseline). GPU memory:
    bf16 weights with :class:`ClusterConfig`'s overhead. Hours assume
    ``ComputeAssumptions.gpu_tflops`` × ``gpu_utilisation``; the CPU column scales the same
    FLOPs by the rate measured here (``cpu_gflops``).
    """
    rows = []
    for model in models:
        spec = find_model_spec(model)
        res = model_resources(model, "bfloat16", "cuda")
        flops = extraction_flops(model, assume.n_records, assume)
        note = f"{spec.params_b:g}B parameters" + (
            f", {spec.active_params_b:g}B active" if spec.active_params_b else ""
        )
        hours = extraction_gpu_hours(model, assume.n_records, assume)
        rows.append(_stage(f"extract {model}", "model", 1, res["gpus"], res["gpu_mem_gb"], hours,
                           _cpu_hours(flops, assume), note + ", weights loaded once"))  # fmt: skip
    d = find_model_spec(sae_model).hidden_size
    width = assume.sae_expansion * d
    sae_mem = (4 * 4 * 2 * d * width + 4 * assume.sae_vectors * d) / 1e9 + 2
    for stage, n, epochs in (
        ("SAE pretraining", assume.sae_vectors, assume.sae_epochs),
        ("SAE fine-tuning", assume.finetune_vectors, assume.finetune_epochs),
    ):
        flops = 12.0 * d * width * n * epochs
        rows.append(_stage(stage, "layer", assume.sae_layers, 1, sae_mem, _hours(flops, assume),
                           _cpu_hours(flops, assume),
                           f"{d:,} x {width:,}, {n:,} vectors, {epochs} epochs"))  # fmt: skip
    arms = 1 + steered_layers * strengths
    tokens = assume.flames_prompts * assume.new_tokens
    gen = model_resources(sae_model, "bfloat16", "cuda")
    rows.append(_stage("generation (baseline + steered)", "layer x strength", arms, gen["gpus"],
                       gen["gpu_mem_gb"], tokens / assume.decode_tokens_per_s / 3600, None,
                       f"{assume.flames_prompts:,} prompts x {assume.new_tokens} new tokens, "
                       f"{assume.decode_tokens_per_s:g} tokens/s (decoding-bound)"))  # fmt: skip
    calls = f"{2 * assume.flames_prompts:,} API calls per arm (both orders)"
    rows.append(_stage("judging", "layer x strength", arms - 1, 0, 0, 0.0, None, calls))
    table = pd.DataFrame(rows)
    total = {c: None for c in table.columns} | {"stage": "total", "jobs": int(table["jobs"].sum())}
    for column in ("GPU hours (estimate)", "CPU hours at the measured rate (estimate)"):
        total[column] = float(table[column].sum())
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    if assume.cpu_gflops <= 0:
        table = table.drop(columns="CPU hours at the measured rate (estimate)")
    return table


def compute_table_markdown(table: pd.DataFrame) -> str:
    """The compute table as a Markdown table for the Re-running page."""
    columns = list(table.columns)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and 0 < value < 0.01:
        return "<0.01"
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 or value == 0 else f"{value:.2g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    """``python -m moralkit.workflow compute-table [--measure | --cpu-gflops X]``: print the
    paper profile's compute estimate as Markdown (for the Re-running page)."""
    import argparse

    from moralkit.profiles import get_profile

    parser = argparse.ArgumentParser(prog="python -m moralkit.workflow")
    parser.add_argument("command", choices=["compute-table"])
    parser.add_argument("--measure", action="store_true", help="measure the CPU rate here")
    parser.add_argument("--cpu-gflops", type=float, default=0.0, help="a measured CPU rate")
    args = parser.parse_args(argv)
    gflops = measured_cpu_gflops() if args.measure else args.cpu_gflops
    if gflops:
        print(f"<!-- CPU extraction rate measured: {gflops:.1f} GFLOP/s -->")
    models = get_profile("paper").defaults["model"]
    print(
        compute_table_markdown(compute_table(models, assume=ComputeAssumptions(cpu_gflops=gflops)))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
