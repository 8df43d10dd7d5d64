"""The compute plan of a profile: per chapter and model, GPU memory, forward FLOPs, GPU-hours.

(book: Re-running, reproduce.md; Methods › Workflow, methods/workflow.md.) Computed, not
guessed, from two sources: the model registry (:mod:`moralkit.models.registry`: parameters,
active parameters and experts of MoE models, layers, width) and the profile's resolved
parameters (records, prompts, items, generation lengths, grids, strengths). What the profile
does not say (how many tokens a prompt has, how many items a dataset holds) is a field of
:class:`Workload`, stated once; the GPU is a :class:`GPU` with its datasheet numbers.

FLOPs: 2 × active parameters per token forward, 3× that with the backward pass (SNIP scores),
12 × d × latents per vector and epoch for an SAE. GPU-hours: FLOPs at the GPU's sustained rate,
or, for generation, the decode steps at the rate the weights can be read from memory (whichever
is slower), plus reading the weights once; a model spread over several GPUs costs its hours on
each. Memory: weights in the profile's dtype × :attr:`GPU.weight_overhead` + headroom. These
are ESTIMATES; :func:`plan_table` labels them so. Counted: chapter 07's pretrained SAEs per seed
and its fine-tunings per seed and cross-fitting fold; chapter 10's second backward pass per
unity prompt and every random mask's measures. Not counted: the greedy answers a random mask
changes and chapter 10 generates again (at most ``n_eval`` per mask; usually few).

The Snakemake workflow asks SLURM for what :func:`job_resources` derives from the same numbers
(:mod:`moralkit.compute_plan.resources`); the costs are in :mod:`moralkit.compute_plan.costs`,
the profile's table and page section in :mod:`moralkit.compute_plan.plan`.
"""

from moralkit.compute_plan.costs import (
    GPU,
    Shape,
    Work,
    Workload,
    chapter_work,
    extraction_work,
    gpu_memory_gb,
    gpus_for,
    host_memory_mb,
    model_shape,
    weights_gb,
    work_flops,
    work_gpu_hours,
)
from moralkit.compute_plan.plan import (
    END,
    START,
    chapter_totals,
    main,
    markdown,
    page_section,
    plan_table,
    profile_work,
    write_section,
)
from moralkit.compute_plan.resources import job_resources

__all__ = [
    "END", "GPU", "START", "Shape", "Work", "Workload", "chapter_totals", "chapter_work",
    "extraction_work", "gpu_memory_gb", "gpus_for", "host_memory_mb", "job_resources", "main",
    "markdown", "model_shape", "page_section", "plan_table", "profile_work", "weights_gb",
    "work_flops", "work_gpu_hours", "write_section",
]  # fmt: skip
