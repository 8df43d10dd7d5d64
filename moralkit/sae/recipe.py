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
from moralkit.results import Gate, claim_settings
from moralkit.sae.data import TextBatch
from moralkit.sae.metrics import reconstruction_gate
from moralkit.sae.rediagnose import (
    DIFFERENCE_COLUMNS,
    RediagnosisConfig,
    RediagnosisResult,
    rediagnose,
)
from moralkit.sae.surgery import SurgeryConfig, surgery_from_activations
from moralkit.sae.tables import GATE_CLAIM, SurgeryResult

__all__ = [
    "SAE_CHAPTER",
    "Extract",
    "SurgeryInputs",
    "claim_layer",
    "layer_gate",
    "sae_rediagnosis",
    "sae_chapter_config",
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
    layers, the unlabelled texts (``text``, ``source``) and their activations."""

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
    ``config.seed``; none of them a text of ``records`` or of ``config.exclude_ground_truths``)
    and both sets' activations at ``layers`` (the unlabelled ones extracted once and cached,
    like every activation, so other chapters reuse them)."""
    layers = [int(x) for x in layers]
    acts = extract(model, records, layers=layers)
    texts = unlabelled_texts(
        config.n_unlabelled, seed=config.seed,
        exclude_ground_truths=config.exclude_ground_truths, exclude=records.texts,
    )  # fmt: skip
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


def layer_gate(surgery: SurgeryResult, layer: int, settings: Mapping[str, Any]) -> Gate:
    """``sae_reconstruction`` of one layer: both stages of every seed on the labelled records
    (cross-fitted), dead latents on those and the held-out unlabelled texts."""
    t = surgery["layers"]
    rows = []
    for r in t[t["layer"] == int(layer)].itertuples(index=False):
        for stage, p in (("pretrained", ""), ("fine-tuned", "finetuned_")):
            rows.append({
                "label": f"seed {r.seed} {stage}",
                "explained_variance": getattr(r, f"{p}explained_variance"),
                "explained_variance_rest": getattr(r, f"{p}explained_variance_rest"),
                "dead_fraction": getattr(r, f"{p}dead_fraction"),
            })  # fmt: skip
    return reconstruction_gate(rows, settings, f"layer {int(layer)}: ")


def claim_layer(surgery: SurgeryResult) -> int:
    """The layer the SAE claims are judged at: of the layers that pass the gate (all layers
    when none does), the one with the highest mean layer score of the paper's identification
    (§4.3), which reads no re-diagnosis result."""
    t = surgery["layers"]
    gated = surgery.gated_layers() or sorted(t["layer"].unique())
    scores = t[t["layer"].isin(gated)].groupby("layer")["layer_score"].mean()
    return int(scores.idxmax())


def _below_gate(layer: int, gate: Gate, ground_truth: str) -> dict:
    return {"ground_truth": ground_truth, "layer": layer, "seed": "all",
            "comparison": "below the gate", "verdict": "below the gate",
            "detail": gate.detail}  # fmt: skip


def sae_rediagnosis(
    model: str,
    surgery: SurgeryResult,
    control: MoralRecords,
    extract: Extract,
    config: RediagnosisConfig,
    ground_truth: str,
    control_ground_truth: str,
) -> RediagnosisResult:
    """Chapter 07's re-diagnosis (:func:`~moralkit.sae.rediagnose.rediagnose`) at every layer
    whose SAEs pass the reconstruction gate: all labelled records of the fine-tuning ground
    truth (cross-fitted) and the ``control`` records (``control_ground_truth``, never
    fine-tuned on). Layers below the gate get one row saying so, and no numbers."""
    settings = claim_settings(GATE_CLAIM)
    records, acts = surgery.inputs.records, surgery.inputs.acts
    layers = sorted(surgery["layers"]["layer"].unique())
    control_acts = extract(model, control, layers=layers, poolings=[config.pooling])
    results, below = [], []
    for layer in layers:
        gate = layer_gate(surgery, layer, settings)
        if not gate.passed:
            below.append(_below_gate(int(layer), gate, ground_truth))
            continue
        seeds = [s for s in surgery.surgeries if s.layer == layer]
        x = acts.get(layer, config.pooling)
        results.append(rediagnose(x, records, seeds, config, ground_truth))
        x = control_acts.get(layer, config.pooling)
        results.append(rediagnose(x, control, seeds, config, control_ground_truth, False))
    out = _stack(results, below, config)
    out.claim_gates = [layer_gate(surgery, claim_layer(surgery), settings)]
    out.claim_layer = claim_layer(surgery)
    return out


def _stack(results, below, config) -> RediagnosisResult:
    if results:
        out = RediagnosisResult.stack(results)
    else:
        names = RediagnosisResult.TABLES
        out = RediagnosisResult({n: pd.DataFrame() for n in names}, config)
    d = pd.concat([out.tables["differences"], pd.DataFrame(below)], ignore_index=True)
    out.tables["differences"] = d.reindex(columns=list(DIFFERENCE_COLUMNS))
    return out


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
