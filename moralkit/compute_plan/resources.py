"""The Snakemake resources of a job (GPUs, host memory, run time) from the compute plan.

(book: Methods › Workflow, methods/workflow.md.) The SLURM profile asks for what
:func:`job_resources` derives from the same numbers as the plan on the Re-running page: no GPU
for a job whose work needs none, memory by the size of the model it loads.
"""

from __future__ import annotations

import math

from moralkit import workflow as wf
from moralkit.compute_plan import costs as plan
from moralkit.compute_plan.costs import GPU


def job_resources(
    rule: str, profile: str, chapter: str, model: str | None = None, gpu: GPU | None = None
) -> dict[str, int]:
    """Snakemake resources of one job (``gpu``, ``mem_mb``, ``runtime`` minutes) from the
    compute plan's numbers (:mod:`moralkit.compute_plan`): a rule whose work needs no GPU, or a
    chapter run on the CPU, asks for none; memory follows the size of the model it loads (the
    checkpoint in the local hub cache when there is one, else the registry).

    ``rule``: ``extract`` (``model``), ``chapter``, ``sae`` or ``generate`` (``model``: the
    steered model); ``chapter`` is the chapter whose parameters the job uses.
    """
    params, gpu = wf.chapter_parameters(chapter, profile), gpu or GPU()
    on_gpu = params["device"] != "cpu"
    if rule == "extract":
        work = [plan.extraction_work(chapter, model, params)]
    elif rule == "chapter":  # SAEs come from their own jobs; generation may run in the chapter
        work = [w for w in plan.chapter_work(chapter, params) if w.kind != "sae"]
    else:  # sae | generate: one layer's SAE, one steered arm
        work = [w for w in plan.chapter_work(chapter, params) if w.kind == rule]
    if rule == "sae":
        return _sae_resources(work, params, on_gpu)
    hours = sum(_wall_hours(w, params["dtype"], gpu) for w in work)
    floor = 240 if rule == "chapter" else 30  # a chapter's CPU analysis is not in the plan
    runtime = max(floor, math.ceil(hours * 60 * 3))  # three times the estimate
    models = list(dict.fromkeys(w.model for w in work))
    read = wf.chapter_models(chapter, profile) if rule == "chapter" else models
    mem = _cached_activations_mb(params, read)
    if not models:  # reads cached activations only
        return {"gpu": 0, "mem_mb": mem, "runtime": runtime}
    dtype = params["dtype"]
    gpus = max(plan.gpus_for(m, dtype, gpu, local=True) for m in models) if on_gpu else 0
    host = max(plan.host_memory_mb(m, dtype, on_gpu, gpu, local=True) for m in models)
    return {"gpu": gpus, "mem_mb": max(host, mem), "runtime": runtime}


def _wall_hours(work: plan.Work, dtype: str, gpu: GPU) -> float:
    """Wall-clock hours of one job's share of ``work`` (its GPU-hours over its GPUs)."""
    gpus = 1 if work.kind == "sae" else plan.gpus_for(work.model, dtype, gpu)
    return plan.work_gpu_hours(work, dtype, gpu) / gpus / work.jobs


def _sae_resources(work: list, params: dict, on_gpu: bool) -> dict[str, int]:
    hours = sum(_wall_hours(w, params["dtype"], GPU()) for w in work)
    model = params["model"][0]
    shape = plan.model_shape(model, local=True)
    vectors = plan.Workload().unlabelled_texts + plan.Workload().paper_records
    mem_gb = 4 * shape.width * vectors * float(params.get("sample_scale") or 1.0) / 1e9 + 8
    return {"gpu": int(on_gpu), "mem_mb": int(1024 * math.ceil(mem_gb)),
            "runtime": max(30, math.ceil(hours * 60 * 3))}  # fmt: skip


def _cached_activations_mb(params: dict, models: list[str]) -> int:
    """Host memory to hold the largest of ``models``' activations (float32, every pooling and
    layer of the profile's records), plus 8 GB for the analysis."""
    if not models:
        return 8192
    records = plan.Workload().paper_records * float(params.get("sample_scale") or 1.0)
    poolings = len(params.get("poolings") or ["mean"])
    shapes = [plan.model_shape(m, local=True) for m in models]
    size = max(shapes, key=lambda s: s.n_layers * s.width)
    gb = records * size.n_layers * size.width * 4 * poolings / 1e9 + 8
    return int(1024 * math.ceil(gb))
