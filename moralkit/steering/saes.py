"""The SAEs steering uses: chapter 07's pretrained and fine-tuned SAEs, per layer.

(paper §4.2–4.5; book: Methods › Steering, methods/steering.md.) Steering itself only needs a
sae-lens SAE, its centre and (optionally) feature ids. The steering chapter gets them from
chapter 07's own recipe, :func:`moralkit.sae.recipe.sae_surgery`, with chapter 07's settings
(:func:`moralkit.sae.recipe.sae_chapter_config`): the SAEs chapter 07 (or the workflow's ``sae``
job) stored are loaded, a layer never trained with those settings is trained the same way,
unlabelled texts included. No other lookup exists, so the steered SAE is always the one chapter
07 would train with these settings. Steering uses the first training seed and, of its
cross-fitted fine-tuned SAEs, the first fold's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from moralkit.steering.hook import SteeringSAE

__all__ = ["STEERING_KINDS", "SteeringSAEs", "load_steering_saes", "steering_saes"]

if TYPE_CHECKING:
    from moralkit.records import MoralRecords
    from moralkit.sae.recipe import Extract
    from moralkit.sae.tables import SurgeryResult

STEERING_KINDS = ("pretrained", "finetuned", "delta")


class SteeringSAEs(dict):
    """``{(stage, layer): SteeringSAE}``, with ``layers``: chapter 07's layer table of the
    steered layers (reconstruction, dead latents, ``passes_gate``), so a steering chapter shows
    whether each steered SAE reconstructs well enough for its arm to mean anything."""

    layers: Any = None


def steering_saes(surgery: SurgeryResult, device: str = "cpu") -> SteeringSAEs:
    """``{(stage, layer): SteeringSAE}`` for every layer of ``surgery``, on ``device``: the
    first training seed's pretrained SAE, its first cross-fitting fold's fine-tuned SAE (with
    its fine-tuned feature ids; fine-tuned on the other folds of the labelled records) and the
    error-preserving pair of the two (stage ``"delta"``)."""
    found = SteeringSAEs()
    first = min(s.seed for s in surgery.surgeries)
    for s in surgery.surgeries:
        if s.seed != first:
            continue
        centre = torch.as_tensor(s.centre).float().to(device)
        pre, ft = s.pretrained.eval().to(device), s.finetuned[0].eval().to(device)
        selected = tuple(int(i) for i in s.features[0]) if len(s.features[0]) else None
        found[("pretrained", int(s.layer))] = SteeringSAE(pre, centre)
        found[("finetuned", int(s.layer))] = SteeringSAE(ft, centre, selected)
        found[("delta", int(s.layer))] = SteeringSAE(ft, centre, selected, base=pre)
    table = getattr(surgery, "tables", {}).get("layers")
    if table is not None:
        found.layers = table[table["seed"] == first].reset_index(drop=True)
    return found


def load_steering_saes(
    model: str,
    records: MoralRecords,
    extract: Extract,
    layers: Sequence[int],
    params: Mapping[str, Any],
    device: str = "cpu",
    train: bool = True,
) -> SteeringSAEs:
    """The steering SAEs of ``model`` at ``layers`` (resolved indices) for a steering chapter
    with parameters ``params``: chapter 07's recipe with chapter 07's settings, on the chapter's
    ``records`` and its activation getter ``extract`` (``ch.records()``, ``ch.activations``),
    for the first training seed only (the one steering uses).

    ``train=False`` (the workflow's generation jobs, which run after the ``sae`` jobs) raises
    ``FileNotFoundError`` for an SAE never trained with these settings instead of training it.
    """
    import dataclasses

    from moralkit.sae.recipe import sae_chapter_config, sae_surgery

    config = dataclasses.replace(sae_chapter_config(params), n_seeds=1)
    surgery = sae_surgery(model, records, extract, layers, config, train=train)
    return steering_saes(surgery, device)
