"""The SAEs steering uses: chapter 07's pretrained and fine-tuned SAEs, per layer.

(paper §4.2–4.5; book: Methods › Steering, methods/steering.md.) Steering itself only needs a
sae-lens SAE, its centre and (optionally) feature ids. The steering chapter gets them from
chapter 07's own recipe, :func:`moralkit.sae.recipe.sae_surgery`, with chapter 07's settings
(:func:`moralkit.sae.recipe.sae_chapter_config`): the SAEs chapter 07 (or the workflow's ``sae``
job) stored are loaded, a layer never trained with those settings is trained the same way,
unlabelled texts included. No other lookup exists, so the steered SAE is always the one chapter
07 would train with these settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from moralkit.steering.hook import SteeringSAE

if TYPE_CHECKING:
    from moralkit.records import MoralRecords
    from moralkit.sae.recipe import Extract
    from moralkit.sae.surgery import SurgeryResult

STEERING_KINDS = ("pretrained", "finetuned")


def steering_saes(
    surgery: SurgeryResult, device: str = "cpu"
) -> dict[tuple[str, int], SteeringSAE]:
    """``{(stage, layer): SteeringSAE}`` for both stages and every layer of ``surgery``, on
    ``device``; the fine-tuned SAE carries its fine-tuned feature ids."""
    found = {}
    for s in surgery.surgeries:
        centre = torch.as_tensor(s.centre).float().to(device)
        selected = tuple(int(i) for i in s.features) if len(s.features) else None
        found[("pretrained", int(s.layer))] = SteeringSAE(s.pretrained.eval().to(device), centre)
        found[("finetuned", int(s.layer))] = SteeringSAE(
            s.finetuned.eval().to(device), centre, selected
        )
    return found


def load_steering_saes(
    model: str,
    records: MoralRecords,
    extract: Extract,
    layers: Sequence[int],
    params: Mapping[str, Any],
    device: str = "cpu",
    train: bool = True,
) -> dict[tuple[str, int], SteeringSAE]:
    """The steering SAEs of ``model`` at ``layers`` (resolved indices) for a steering chapter
    with parameters ``params``: chapter 07's recipe with chapter 07's settings, on the chapter's
    ``records`` and its activation getter ``extract`` (``ch.records()``, ``ch.activations``).

    ``train=False`` (the workflow's generation jobs, which run after the ``sae`` jobs) raises
    ``FileNotFoundError`` for an SAE never trained with these settings instead of training it.
    """
    from moralkit.sae.recipe import sae_chapter_config, sae_surgery

    config = sae_chapter_config(params)
    surgery = sae_surgery(model, records, extract, layers, config, train=train)
    return steering_saes(surgery, device)
