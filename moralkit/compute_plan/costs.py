"""What one piece of a profile's GPU work costs: FLOPs, GPU memory, GPU-hours, on an H100.

(book: Re-running, reproduce.md; Methods › Workflow, methods/workflow.md.) The package
docstring (:mod:`moralkit.compute_plan`) says where the numbers come from and what they assume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from moralkit.models.registry import find_model_spec

_BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0}


@dataclass(frozen=True)
class GPU:
    """An H100-class GPU. ``peak_tflops``: dense BF16 tensor-core peak of the H100 SXM5
    (NVIDIA H100 datasheet: 989 TFLOP/s without sparsity); ``utilisation``: the fraction that
    short-prompt inference sustains (an assumption: batches of 16-token prompts are far from
    the large matrix products that reach 40-50 %); ``memory_tb_s``: HBM3 bandwidth (datasheet:
    3.35 TB/s), which bounds decoding; ``load_gb_s``: reading weights from a shared file
    system (an assumption)."""

    name: str = "H100 SXM (80 GB)"
    memory_gb: float = 80.0
    peak_tflops: float = 989.0
    utilisation: float = 0.25
    memory_tb_s: float = 3.35
    load_gb_s: float = 1.0
    weight_overhead: float = 1.2  # CUDA context, fragmentation, buffers
    headroom_gb: float = 4.0  # activations and KV cache of one batch
    host_factor: float = 1.25  # host memory to load the weights
    host_base_gb: float = 16.0

    @property
    def sustained_flops(self) -> float:
        return self.peak_tflops * 1e12 * self.utilisation


@dataclass(frozen=True)
class Workload:
    """What the profile leaves implicit. Token counts are means of moralkit's prompts (the
    template around a Social-Chem action; a lexicon word; a Moral Stories or ETHICS item; a
    Flames prompt; a PVQ item with its instructions); item counts were counted from the
    loaders (``ValueItemsConfig()``: 21 find / 19 measure PVQ items; ``unlabelled_texts(-1)``:
    50,041 texts, an upper bound as the SAE chapter leaves out the scored texts; Moral Stories
    test 1,000; ETHICS commonsense short test 2,109, hard 1,704); ``paper_records`` is the
    paper's stratified subset (paper §1.5)."""

    paper_records: int = 16_315
    subset_max_records: int = 18_000  # the subset's caps at scale 1 (a lexicon's upper bound)
    prompt_tokens: int = 16
    lexicon_tokens: int = 6
    text_tokens: int = 16  # an unlabelled SAE text, a neutral fluency text
    item_tokens: int = 80  # a Moral Stories / ETHICS item with its question
    request_tokens: int = 24  # an AdvBench or Flames request
    margin_tokens: int = 50  # the margin's six held-out continuations (SmolLM2, Gemma 3: 50)
    pvq_tokens: int = 120
    unlabelled_texts: int = 50_041
    pvq_find_items: int = 21
    pvq_measure_items: int = 19
    moral_stories: int = 1_000
    ethics: int = 2_109
    ethics_hard: int = 1_704
    flames_prompts: int = 1_000
    decode_batch: int = 32
    sae_epochs_finetune: int = 50
    pvq_options: int = 6


@dataclass(frozen=True)
class Shape:
    """A model's size as the plan uses it (from the registry)."""

    name: str
    params_b: float
    active_b: float
    n_layers: int
    width: int
    experts: str


def model_shape(name: str, local: bool = False) -> Shape:
    """The registry's numbers for ``name``; with ``local=True`` the checkpoint's own counts when
    its config is in the local hub cache (the model a job will load: a twin of the rehearsal, a
    model the registry miscounts). A model outside the registry (a local folder, a tiny test
    model) counts as 1B dense parameters: a token amount."""
    spec = find_model_spec(name)
    if local and spec is not None and spec.hf_id and spec.offline is None:
        from moralkit.models.identity import cached_hub_file

        config = cached_hub_file(spec.hf_id, "config.json")
        if config is not None:
            return _counted_shape(spec.name, str(config))
    if spec is None or not spec.params_b:
        depth, width = (spec.n_layers, spec.hidden_size) if spec else (1, 1)
        return Shape(name, 1.0, 1.0, depth, width, "")
    experts = f"{spec.experts_per_token} of {spec.n_experts}" if spec.n_experts else ""
    return Shape(name, spec.params_b, spec.active_params_b or spec.params_b, spec.n_layers,
                 spec.hidden_size, experts)  # fmt: skip


@lru_cache(maxsize=128)
def _counted_shape(name: str, config_path: str) -> Shape:
    """Parameters counted on the meta device from a cached config (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(Path(config_path).parent)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    routed = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    text = config.get_text_config()
    n_experts = getattr(text, "num_local_experts", None) or getattr(text, "num_experts", None)
    top_k = getattr(text, "num_experts_per_tok", None)
    active = total - routed * (1 - top_k / n_experts) if n_experts and top_k else total
    return Shape(name, total / 1e9, active / 1e9, int(text.num_hidden_layers),
                 int(text.hidden_size), f"{top_k} of {n_experts}" if n_experts else "")  # fmt: skip


def weights_gb(model: str, dtype: str = "bfloat16", local: bool = False) -> float:
    """The weights in GB (parameters × bytes per parameter of ``dtype``)."""
    return model_shape(model, local).params_b * _BYTES[dtype]


def gpu_memory_gb(
    model: str, dtype: str = "bfloat16", gpu: GPU = GPU(), local: bool = False
) -> float:
    """GPU memory a job that loads ``model`` needs, over all its GPUs."""
    return weights_gb(model, dtype, local) * gpu.weight_overhead + gpu.headroom_gb


def gpus_for(model: str, dtype: str = "bfloat16", gpu: GPU = GPU(), local: bool = False) -> int:
    """GPUs the model is spread over (``device_map="auto"``)."""
    return max(1, math.ceil(gpu_memory_gb(model, dtype, gpu, local) / gpu.memory_gb))


def host_memory_mb(
    model: str, dtype: str, on_gpu: bool, gpu: GPU = GPU(), local: bool = False
) -> int:
    """Host memory of a job that loads ``model``: the weights pass through it."""
    base = gpu.host_base_gb if on_gpu else 2.0
    return int(1024 * math.ceil(weights_gb(model, dtype, local) * gpu.host_factor + base))


# ---------------------------------------------------------------------- work per chapter
@dataclass(frozen=True)
class Work:
    """One piece of a chapter's GPU work on one model: ``tokens`` forward, ``backward_tokens``
    forward and backward, ``decode_steps`` sequential generation steps (batched), ``flops``
    that are not a model's forward pass (SAE training), and what it is."""

    chapter: str
    model: str
    what: str
    tokens: float = 0.0
    backward_tokens: float = 0.0
    decode_steps: float = 0.0
    flops: float = 0.0
    jobs: int = 1  # how many workflow jobs share it (one per SAE layer, per steered arm)
    kind: str = "chapter"  # the workflow job that does it: extract | sae | generate | chapter
    loads: int = 1  # times the weights are read (once per job; once per chapter and model)


def _records(params: dict, w: Workload, scale_key: str = "sample_scale") -> float:
    return w.paper_records * float(params.get(scale_key) or 1.0)


def _generation(w: Workload, n_prompts: float, new_tokens: float, prompt_tokens: float):
    batches = math.ceil(n_prompts / w.decode_batch)
    return dict(tokens=n_prompts * (prompt_tokens + new_tokens), decode_steps=batches * new_tokens)


def chapter_work(chapter: str, params: dict, w: Workload = Workload()) -> list[Work]:
    """The GPU work of ``chapter`` (an id) with its resolved ``params``, per model.

    Chapters 01-06 read cached activations (extraction is its own job, counted under the first
    chapter that reads a model: see :func:`extraction_work`) and need no GPU.
    """
    number = chapter.split("_", 1)[0]
    models = list(params.get("model") or [])
    builder = _BUILDERS.get(number)
    out: list[Work] = []
    for model in models if builder else []:
        pieces = builder(chapter, model, params, w)
        # one load per chapter and model, one per job for the work split into jobs
        out += [
            replace(x, loads=x.jobs if x.jobs > 1 else int(i == 0)) for i, x in enumerate(pieces)
        ]
    return out


def extraction_work(chapter: str, model: str, params: dict, w: Workload = Workload()) -> Work:
    """The extraction job of ``model``: the profile's records once, every layer."""
    n = _records(params, w)
    return Work(chapter, model, f"extract {n:,.0f} records", tokens=n * w.prompt_tokens,
                kind="extract")  # fmt: skip


def _sae(chapter: str, model: str, p: dict, w: Workload) -> list[Work]:
    from moralkit.sae.config import finetune_preset, preset
    from moralkit.sae.surgery import SurgeryConfig

    shape, train = model_shape(model), preset(p["sae_preset"])
    fine_epochs = finetune_preset(p["sae_preset"]).epochs
    layers = p["sae_layers"].resolve(shape.n_layers) if p.get("sae_layers") else ()
    unlabelled = w.unlabelled_texts if p["n_unlabelled"] < 0 else p["n_unlabelled"]
    default = SurgeryConfig()
    seeds = int(p.get("n_seeds") or default.n_seeds)
    folds = int(p.get("n_folds") or default.n_folds)
    pretrained = 1 if p.get("shared_pretraining") else seeds
    latents = train.d_sae(shape.width)
    per_vector = 12.0 * shape.width * latents  # encoder + decoder, forward + backward
    # pretraining reads unlabelled texts only; each seed's SAE is fine-tuned once per
    # cross-fitting fold, on the other folds' records; held-out shares train nothing
    pre = per_vector * (1 - train.val_fraction) * unlabelled * train.epochs * pretrained
    fine_vectors = (1 - default.val_fraction) * _records(p, w) * (folds - 1) / folds
    fine = per_vector * fine_vectors * fine_epochs * seeds * folds
    control = w.subset_max_records * float(p.get("sample_scale") or 1.0)
    return [
        Work(chapter, model, f"extract {unlabelled:,} unlabelled texts + control records",
             tokens=unlabelled * w.text_tokens + control * w.lexicon_tokens),
        Work(chapter, model, f"train {len(layers)} layers x ({pretrained} SAEs of {latents:,} "
             f"latents, {train.epochs} epochs, + {seeds} seeds x {folds} folds fine-tuned, "
             f"{fine_epochs} epochs)",
             flops=(pre + fine) * len(layers), jobs=max(1, len(layers)), kind="sae"),
    ]  # fmt: skip


def _steering(chapter: str, model: str, p: dict, w: Workload) -> list[Work]:
    layers = len(p["steer_layers"].resolve(model_shape(model).n_layers))
    arms = 1 + 2 * layers * len(p["steer_strengths"])  # unsteered + pretrained/fine-tuned SAEs
    items = sum(n if n is not None else full for n, full in (
        (p["n_moral_stories"], 2 * w.moral_stories), (p["n_ethics"], w.ethics),
        (p["n_ethics"], w.ethics_hard)))  # fmt: skip
    prompts = p["n_flames_prompts"] or w.flames_prompts
    flames_arms = 1 + layers * len(p["steer_strengths"])  # the fine-tuned SAE's arms
    gen = _generation(w, prompts * flames_arms, p["max_new_tokens"], w.request_tokens)
    return [
        Work(chapter, model, f"behaviour: {items:,} items x {arms} arms",
             tokens=arms * (items * w.item_tokens + p["n_fluency_texts"] * w.text_tokens)),
        Work(chapter, model, f"Flames: {prompts:,} prompts x {p['max_new_tokens']} new tokens "
             f"x {flames_arms} arms", jobs=flames_arms, kind="generate", **gen),
    ]  # fmt: skip


def _value_neurons(chapter: str, model: str, p: dict, w: Workload) -> list[Work]:
    conditions = len(p["targets"]) * len(p["modes"]) * (len(p["gammas"]) - 1)
    pvq = w.pvq_measure_items * (1 + conditions / 2) * w.pvq_tokens  # a target + its opposite
    fluency = len(p["fluency_modes"]) * len(p["gammas"]) * p["n_fluency_texts"] * w.text_tokens
    answers = len(p["answer_gammas"]) * len(p["modes"]) * p["n_answer_items"]
    bridge = p["bridge_records"] * 10 * w.prompt_tokens  # 5 foundations x 2 poles
    # the random-neuron control: n_random matched sets per value at each random γ
    randoms = p.get("n_random", 0) * len(p.get("random_gammas") or []) * len(p["targets"])
    random_pvq = randoms * w.pvq_measure_items * w.pvq_tokens
    gen = _generation(w, answers, p["answer_tokens"], w.pvq_tokens)
    said = f"{answers} sample answers of {p['answer_tokens']} tokens"
    return [Work(chapter, model, f"contrast, {conditions} edits, {randoms} random sets, fluency, "
                 "bridge", tokens=2 * w.pvq_find_items * w.pvq_tokens + pvq + random_pvq + fluency
                 + bridge),
            Work(chapter, model, said, **gen)]  # fmt: skip


def _pruning(chapter: str, model: str, p: dict, w: Workload) -> list[Work]:
    from moralkit.pruning.results import HarmfulWeightsConfig

    groups = len(p.get("unity_groups") or HarmfulWeightsConfig().unity_groups)
    harmful, benign = groups * p["unity_per_group"], p["unity_per_group"]
    # every ranking once (harmful, format-matched benign, refusals, retain, plain benign text),
    # then each harmful and benign prompt again for its candidate scores (the unity)
    calib = 2 * (harmful + benign) + p["n_calibration"] + p["n_retain"] + benign
    sample = w.request_tokens + p["completion_tokens"]
    randoms = p.get("n_random_masks", 0) * len(p.get("random_directions") or [])
    measured = 1 + 2 + 2 * len(p["q_grid"])  # unpruned, headline, compactness
    margins = p["n_eval"] * (w.request_tokens + w.margin_tokens)  # held-out continuations
    prefix = p["n_eval"] * (2 * w.request_tokens + 16)  # the old pair, also on measured masks
    fluency = p["n_perplexity"] * w.text_tokens
    items = (2 * p["n_moral_stories"] + 2 * p["n_ethics"]) * w.item_tokens
    kept = p["n_eval"] * (w.request_tokens + p["max_new_tokens"])  # greedy answers checked
    masks = measured * (margins + prefix + fluency) + randoms * (margins + fluency + kept)
    behaviour = (3 + randoms) * items  # unpruned, headline masks, random masks
    bridge = 3 * _records(p, w, "bridge_sample_scale") * w.prompt_tokens
    gen = _generation(w, 3 * p["n_eval"], p["max_new_tokens"], w.request_tokens)
    answers = f"greedy answers: 3 x {p['n_eval']} x {p['max_new_tokens']} tokens"
    return [
        Work(chapter, model, f"SNIP scores: {calib} backward passes over calibration texts",
             backward_tokens=calib * sample),
        Work(chapter, model, f"{measured} masks + {randoms} random masks: margins, perplexity, "
             "behaviour, bridge", tokens=masks + behaviour + bridge),
        Work(chapter, model, answers, **gen),
    ]  # fmt: skip


def _replication(chapter: str, model: str, p: dict, w: Workload) -> list[Work]:
    lexicons = [g for g in p["ground_truth"] if not str(g).startswith("socialchem")]
    n = w.subset_max_records * float(p.get("sample_scale") or 1.0)
    return [Work(chapter, model, f"extract {len(lexicons)} lexicons (<= {n:,.0f} records each)",
                 tokens=len(lexicons) * n * w.lexicon_tokens)]  # fmt: skip


_BUILDERS = {"07": _sae, "08": _steering, "09": _value_neurons, "10": _pruning, "11": _replication}


# ---------------------------------------------------------------------- costs
def work_flops(work: Work) -> float:
    """Forward FLOPs (3x for tokens with a backward pass) plus the work's own FLOPs."""
    active = model_shape(work.model).active_b * 1e9
    return 2.0 * active * (work.tokens + 3.0 * work.backward_tokens) + work.flops


def work_gpu_hours(work: Work, dtype: str = "bfloat16", gpu: GPU = GPU()) -> float:
    """GPU-hours of ``work``: compute- or decode-bound, plus loading the weights; a model over
    several GPUs holds all of them for its wall time. SAE training needs one GPU per job."""
    if work.flops and not (work.tokens or work.backward_tokens):
        return work.flops / gpu.sustained_flops / 3600.0
    n_gpus = gpus_for(work.model, dtype, gpu)
    compute = work_flops(work) / gpu.sustained_flops
    decode = work.decode_steps * weights_gb(work.model, dtype) / (gpu.memory_tb_s * 1e3)
    load = weights_gb(work.model, dtype) / gpu.load_gb_s * work.loads
    return n_gpus * (max(compute, decode) + load) / 3600.0
