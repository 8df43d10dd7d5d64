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


def _layer(layer: int, features: list[int], seed: int = 0) -> object:
    def sae() -> object:
        return sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=32, d_sae=16))

    ids = np.array(features, dtype=np.int64)
    return surgery.LayerSurgery(
        layer, seed, sae(), np.full(32, 0.5), np.zeros(4, dtype=int), [sae(), sae()],
        [ids, np.zeros(0, dtype=np.int64)], [None, None], {},
    )  # fmt: skip


def test_steering_saes_are_the_first_seeds_first_fold():
    surgery = SimpleNamespace(
        surgeries=[_layer(1, [1, 4], seed=5), _layer(1, [2], seed=6), _layer(2, [], seed=5)]
    )
    saes = steering_saes(surgery)
    assert set(saes) == {(k, n) for k in ("pretrained", "finetuned", "delta") for n in (1, 2)}
    first = surgery.surgeries[0]
    assert saes[("finetuned", 1)].sae is first.finetuned[0]
    assert saes[("finetuned", 1)].selected == (1, 4)
    assert saes[("pretrained", 1)].selected is None and saes[("finetuned", 2)].selected is None
    assert saes[("pretrained", 1)].sae is first.pretrained
    assert (
        saes[("delta", 1)].base is first.pretrained and saes[("delta", 1)].sae is first.finetuned[0]
    )
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
    assert len(arms) == 1 + 3 * 2 * 2
    assert {a.stage for a in arms} == {"none", "pretrained", "finetuned", "delta"}
    assert {a.label for a in arms[1:3]} == {"pretrained@3 s=0.5", "pretrained@3 s=1"}


def test_quick_steering_follows_the_gate_outside_the_massive_activation_band():
    """Chapter 08 steers only layers chapter 07 trains (and gates) on the quick profile, and
    none inside SmolLM2-135M's massive-activation band (layers 12-26, where one dimension holds
    about 98% of the pooled variance; chapter 07's "Where this departs")."""
    from moralkit.layers import LayerSpec

    sae = resolve_parameters(recipe.SAE_CHAPTER, "quick")
    steer = resolve_parameters("08_steering_evaluation", "quick")
    depth = 30  # SmolLM2-135M's decoder layers
    steered = LayerSpec.parse(steer["steer_layers"]).resolve(depth)
    assert set(steered) <= set(LayerSpec.parse(sae["sae_layers"]).resolve(depth))
    assert not set(steered) & set(range(12, 27))
