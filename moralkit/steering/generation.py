"""Generate responses with and without steering, with one decoding for both arms, cached.

(paper §4.5; book: Methods › Steering, methods/steering.md.) The paper generated the baseline
with vLLM (temperature 0.7, default top-p, no repetition penalty, 1,024 new tokens) and the
steered runs with Hugging Face ``generate`` (temperature 0.7, top-p 0.9, repetition penalty 1.1,
512 new tokens): the two arms differ in more than the steering. By default both arms here use
the same :class:`DecodingConfig`; ``decoding_setting="paper"`` reproduces the paper's two
settings (labelled in every output row).

Every response is cached as one JSON file keyed by (model weights, steering arm and SAE, prompt,
system prompt, decoding, seed), written atomically, so re-running a chapter only generates what
is missing. The per-prompt seed is derived from ``seed`` and the prompt, so a response does not
depend on which other prompts ran with it. Prompts are formatted and sampled by
:mod:`moralkit.models.generation`, the decoding every chapter shares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from tqdm.auto import tqdm

from moralkit.io import atomic_write_text
from moralkit.models.generation import DecodingConfig, chat_text, generate, has_chat_template
from moralkit.paths import cache_dir
from moralkit.steering.hook import SteeringConfig, SteeringSAE, steering

if TYPE_CHECKING:
    from moralkit.models import LoadedModel

#: the paper's system prompt ("You are a helpful assistant.")
PAPER_SYSTEM_PROMPT = "你是一个有帮助的助手。"
DECODING_SETTINGS = ("same", "paper")


#: the paper's baseline setting (vLLM): default top-p 1.0, no repetition penalty, 1,024 tokens
PAPER_BASELINE_DECODING = DecodingConfig(max_new_tokens=1024, top_p=1.0, repetition_penalty=1.0)
#: the paper's steered setting (HF generate)
PAPER_STEERED_DECODING = DecodingConfig()


def decoding_for(config: SteeringConfig, setting: str, base: DecodingConfig) -> DecodingConfig:
    """The decoding of one arm: ``base`` for all arms ("same"), or the paper's two ("paper")."""
    if setting not in DECODING_SETTINGS:
        raise ValueError(f"decoding_setting={setting!r}; expected one of {DECODING_SETTINGS}")
    if setting == "same":
        return base
    paper = PAPER_BASELINE_DECODING if config.stage == "none" else PAPER_STEERED_DECODING
    return dataclasses.replace(paper, seed=base.seed)


def sae_fingerprint(bundle: SteeringSAE | None) -> str:
    """A hash of an SAE's weights, centre, selection and base SAE (part of the cache key)."""
    if bundle is None:
        return ""
    digest = hashlib.sha256()
    for prefix, sae in (("", bundle.sae), ("base.", bundle.base)):
        for name, tensor in sorted(sae.state_dict().items()) if sae is not None else ():
            digest.update((prefix + name).encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    digest.update(torch.as_tensor(bundle.centre).float().cpu().numpy().tobytes())
    digest.update(json.dumps(list(bundle.selected or [])).encode())
    return digest.hexdigest()[:16]


def prompt_seed(seed: int, prompt: str) -> int:
    """A per-prompt seed: independent of batch order and of the other prompts."""
    return int(hashlib.sha256(f"{seed}|{prompt}".encode()).hexdigest()[:8], 16)


def generation_cache_dir() -> Path:
    """Where responses are cached: ``$MORALKIT_CACHE/generations``."""
    return cache_dir("generations")


@dataclass(frozen=True)
class GenerationJob:
    """Everything that determines one response (its cache key is a hash of this)."""

    model: str
    weights_hash: str
    steering: SteeringConfig
    sae_hash: str
    prompt: str
    system_prompt: str | None
    decoding: DecodingConfig

    def key(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()


def generate_responses(
    loaded: LoadedModel,
    prompts: Sequence[str],
    config: SteeringConfig,
    saes: dict[str, SteeringSAE] | None = None,
    decoding: DecodingConfig = PAPER_STEERED_DECODING,
    decoding_setting: str = "same",
    system_prompt: str | None = PAPER_SYSTEM_PROMPT,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Responses of ``loaded`` to ``prompts`` under one steering arm, one row per prompt.

    Cached responses are read back; missing ones are generated inside :func:`steering` and
    written atomically. Columns: prompt, response, arm, stage, layer, strength, features,
    decoding_setting, decoding (JSON), seed, cached.
    """
    arm_decoding = decoding_for(config, decoding_setting, decoding)
    bundle = (saes or {}).get(config.stage) if config.stage != "none" else None
    sae_hash = sae_fingerprint(bundle)
    root = Path(cache_dir) if cache_dir is not None else generation_cache_dir()
    # the unsteered arm is one arm whatever layer/strength the caller left in its config
    keyed = SteeringConfig(stage="none") if config.stage == "none" else config
    rows, todo = [], []
    for prompt in prompts:
        job = GenerationJob(
            loaded.name, loaded.weights_hash, keyed, sae_hash, prompt, system_prompt, arm_decoding
        )
        path = root / loaded.name / f"{job.key()}.json"
        rows.append(_row(job, decoding_setting, path))
        if rows[-1]["response"] is None:
            todo.append((len(rows) - 1, job, path))
    if todo:
        with steering(loaded.model, config, saes):
            for index, job, path in tqdm(
                todo, desc=f"generate {config.label}", disable=not progress
            ):
                seed = prompt_seed(arm_decoding.seed, job.prompt)
                response = _generate_one(loaded, job.prompt, system_prompt, arm_decoding, seed)
                record = {"response": response, "seed": seed, "job": dataclasses.asdict(job)}
                atomic_write_text(json.dumps(record, ensure_ascii=False), path)
                rows[index].update(response=response, seed=seed, cached=False)
    return pd.DataFrame(rows)


def _generate_one(
    loaded: LoadedModel, prompt: str, system: str | None, decoding: DecodingConfig, seed: int
) -> str:
    """One sampled response to ``prompt`` in the model's chat format, with its own seed."""
    text = chat_text(loaded.tokenizer, prompt, system)
    special = not has_chat_template(loaded.tokenizer)
    return generate(loaded, [text], decoding, special, seed=seed)[0]


def _row(job: GenerationJob, decoding_setting: str, path: Path) -> dict:
    cached = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    return {
        "prompt": job.prompt,
        "response": cached["response"] if cached else None,
        "arm": job.steering.label,
        "stage": job.steering.stage,
        "layer": job.steering.layer if job.steering.stage != "none" else None,
        "strength": job.steering.strength if job.steering.stage != "none" else 0.0,
        "features": job.steering.features,
        "decoding_setting": decoding_setting,
        "decoding": json.dumps(dataclasses.asdict(job.decoding), sort_keys=True),
        "seed": cached["seed"] if cached else None,
        "cached": cached is not None,
    }
