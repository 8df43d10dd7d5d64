"""Chapter 07's recipe: a layer's SAE inputs and the surgery on them, in one call.

(paper §4.1-4.4; book: Methods › SAE surgery, methods/sae.md.) :func:`sae_surgery` is what
every caller runs: chapter 07's notebook, the workflow's ``sae`` job and the steering chapter
(08, through :func:`moralkit.steering.saes.load_steering_saes`). It reads the labelled records
and their activations at the SAE layers, draws the unlabelled texts and extracts theirs, and runs
:func:`~moralkit.sae.surgery.surgery_from_activations`, which loads every SAE already stored for
these inputs and settings and trains the others. One function, one set of inputs, one key per
SAE: no caller can train a variant another caller would then load by mistake.

The settings are a :class:`~moralkit.sae.surgery.SurgeryConfig`
(:meth:`~moralkit.sae.surgery.SurgeryConfig.from_parameters` reads a chapter's parameters);
:func:`sae_chapter_config` gives chapter 07's settings to a chapter that only steers with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moralkit.activation_set import ActivationSet
from moralkit.data.unlabelled import unlabelled_texts
from moralkit.records import MoralRecords
from moralkit.sae.data import TextBatch, split_index, split_records
from moralkit.sae.rediagnose import RediagnosisConfig, RediagnosisResult, rediagnose
from moralkit.sae.surgery import SurgeryConfig, SurgeryResult, surgery_from_activations

__all__ = [
    "SAE_CHAPTER",
    "Extract",
    "SurgeryInputs",
    "sae_chapter_config",
    "sae_rediagnosis",
    "sae_surgery",
    "surgery_inputs",
]

#: the chapter whose settings train every SAE (the steering chapter steers with its SAEs)
SAE_CHAPTER = "07_sae_surgery"


#: the chapter's activation getter, ``extract(model_name, records_or_texts, **overrides)``
#: (:meth:`moralkit.chapter.Chapter.activations`, so the provenance records every extraction)
Extract = Callable[..., ActivationSet]


@dataclass
class SurgeryInputs:
    """What one model's surgery reads: the labelled records and their activations at the SAE
    layers, the unlabelled texts (``text``, ``source``) and theirs (None when there are none)."""

    records: MoralRecords
    acts: ActivationSet
    texts: pd.DataFrame
    unlabelled: ActivationSet | None


def surgery_inputs(
    model: str,
    records: MoralRecords,
    extract: Extract,
    layers: Sequence[int],
    config: SurgeryConfig,
) -> SurgeryInputs:
    """The labelled ``records``, ``config.n_unlabelled`` unlabelled texts (seeded by
    ``config.seed``, none of them a labelled text) and both sets' activations at ``layers``."""
    layers = [int(x) for x in layers]
    acts = extract(model, records, layers=layers)
    texts = unlabelled_texts(config.n_unlabelled, seed=config.seed, exclude=records.texts)
    unlabelled = None
    if len(texts):
        batch = TextBatch(texts["text"].tolist())
        unlabelled = extract(model, batch, layers=layers, poolings=[config.pooling])
    return SurgeryInputs(records, acts, texts, unlabelled)


def sae_surgery(
    model: str,
    records: MoralRecords,
    extract: Extract,
    layers: Sequence[int],
    config: SurgeryConfig,
    cache_dir: str | Path | None = None,
    train: bool = True,
) -> SurgeryResult:
    """Chapter 07's recipe for ``model`` at ``layers`` (resolved layer indices): inputs
    (:func:`surgery_inputs`) then :func:`~moralkit.sae.surgery.surgery_from_activations`.

    SAEs stored for the same inputs and settings are loaded; the others are trained, or with
    ``train=False`` a ``FileNotFoundError`` names them. The result keeps its inputs
    (``result.inputs``) for the re-diagnosis.
    """
    inputs = surgery_inputs(model, records, extract, layers, config)
    result = surgery_from_activations(
        model, inputs.acts, inputs.records, inputs.unlabelled, list(layers), config, cache_dir,
        train=train,
    )  # fmt: skip
    result.inputs = inputs
    return result


def sae_rediagnosis(
    model: str,
    surgery: SurgeryResult,
    control: MoralRecords,
    extract: Extract,
    config: RediagnosisConfig,
    ground_truth: str,
    control_ground_truth: str,
) -> RediagnosisResult:
    """Chapter 07's re-diagnosis: the four diagnostics on the test records of the fine-tuning
    ground truth and of the ``control`` records (``control_ground_truth``, never fine-tuned on),
    for the original activations and both SAEs' reconstructions
    (:func:`~moralkit.sae.rediagnose.rediagnose`)."""
    records, layers = surgery.inputs.records, sorted(s.layer for s in surgery.surgeries)
    test = split_records(records, "test")
    main = rediagnose(
        surgery.inputs.acts.take(split_index(records, "test")), test, surgery.saes(), config,
        ground_truth=ground_truth,
    )  # fmt: skip
    control = split_records(control, "test")
    control_acts = extract(model, control, layers=layers, poolings=[config.pooling])
    held_out = rediagnose(
        control_acts, control, surgery.saes(), config, ground_truth=control_ground_truth
    )
    return RediagnosisResult.stack([main, held_out])


def sae_chapter_config(params: Mapping[str, Any]) -> SurgeryConfig:
    """Chapter 07's SAE settings as another chapter with ``params`` asks for them.

    Chapter 07's parameters under the same profile, with every value ``params`` sets itself
    winning (the steering chapter's ``sae_preset``, ``seed`` and ``pooling``); the others
    (``objective``, ``sampler_bug``, ``n_unlabelled``) are chapter 07's. So a chapter that steers
    with the SAEs gets exactly those chapter 07 trains with the same settings.
    """
    from moralkit.profiles import resolve_parameters

    sae_params = resolve_parameters(SAE_CHAPTER, params.get("profile"))
    own = {k: v for k, v in params.items() if k in sae_params and v is not None}
    return SurgeryConfig.from_parameters({**sae_params, **own})
