"""Steering takes chapter 07's SAEs from chapter 07's own recipe, with chapter 07's settings."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import sae_lens
import torch

from moralkit.profiles import resolve_parameters
from moralkit.sae import recipe, surgery
from moralkit.steering import SteeringConfig, steering_arms, steering_saes


def _layer(layer: int, features: list[int]) -> object:
    def sae() -> object:
        return sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=32, d_sae=16))

    return surgery.LayerSurgery(
        layer, sae(), sae(), np.full(32, 0.5), None, {}, np.array(features, dtype=np.int64)
    )


def test_steering_saes_are_the_surgerys_saes():
    result = SimpleNamespace(surgeries=[_layer(1, [1, 4]), _layer(2, [])])
    saes = steering_saes(result)
    assert set(saes) == {(k, n) for k in ("pretrained", "finetuned") for n in (1, 2)}
    assert saes[("finetuned", 1)].selected == (1, 4)
    assert saes[("pretrained", 1)].selected is None and saes[("finetuned", 2)].selected is None
    assert saes[("finetuned", 1)].sae is result.surgeries[0].finetuned
    assert torch.equal(saes[("finetuned", 1)].centre, torch.full((32,), 0.5))


@pytest.mark.parametrize("profile", ["tiny", "quick", "paper"])
def test_the_steering_chapter_asks_for_chapter_07s_settings(profile):
    """Chapter 08 loads exactly the SAEs chapter 07 trains under the same profile (every
    setting in the store key equal), and its own seed or preset, when changed, wins."""
    sae_chapter = surgery.SurgeryConfig.from_parameters(
        resolve_parameters(recipe.SAE_CHAPTER, profile)
    )
    steering = resolve_parameters("08_steering_evaluation", profile)
    assert recipe.sae_chapter_config(steering) == sae_chapter
    assert sae_chapter.n_unlabelled != 0 and sae_chapter.preset == steering["sae_preset"]
    reseeded = recipe.sae_chapter_config({**steering, "seed": 7})
    assert reseeded.seed == reseeded.train.seed == reseeded.finetune.seed == 7
    assert dataclasses.replace(reseeded, seed=sae_chapter.seed) != sae_chapter  # train differs


def test_steering_arms_grid():
    arms = steering_arms([3, 7], [0.5, 1.0])
    assert arms[0] == SteeringConfig(stage="none")
    assert len(arms) == 1 + 2 * 2 * 2
    assert {a.label for a in arms[1:3]} == {"pretrained@3 s=0.5", "pretrained@3 s=1"}
