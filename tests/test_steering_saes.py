"""Steering finds chapter 07's SAEs in the SAE store, and trains the missing ones on request."""

from __future__ import annotations

import numpy as np
import pytest
import sae_lens
import torch

from moralkit.sae import store
from moralkit.steering import SteeringConfig, load_steering_saes, steering_arms


def _save(root, layer: int, kind: str) -> None:
    sae = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=32, d_sae=16))
    features = np.array([1, 4]) if kind == "finetuned" else None
    folder = root / f"{kind}-{layer}"
    store.save_sae_dir(folder, sae, np.full(32, 0.5), {"layer": layer}, features=features)
    store.register(root, "tiny-llama", layer, "tiny", kind, folder)


def test_load_steering_saes_and_train_missing(tmp_path):
    for kind in ("pretrained", "finetuned"):
        _save(tmp_path, 1, kind)
    saes = load_steering_saes("tiny-llama", [1], "tiny", cache_dir=str(tmp_path))
    assert set(saes) == {("pretrained", 1), ("finetuned", 1)}
    assert saes[("finetuned", 1)].selected == (1, 4)
    assert saes[("pretrained", 1)].selected is None
    assert torch.equal(saes[("finetuned", 1)].centre, torch.full((32,), 0.5))
    with pytest.raises(FileNotFoundError, match=r"layer\(s\) \[2\]"):
        load_steering_saes("tiny-llama", [1, 2], "tiny", cache_dir=str(tmp_path))
    asked = []

    def train(layers):
        asked.append(layers)
        for kind in ("pretrained", "finetuned"):
            _save(tmp_path, layers[0], kind)

    saes = load_steering_saes("tiny-llama", [1, 2], "tiny", train, cache_dir=str(tmp_path))
    assert asked == [[2]] and ("finetuned", 2) in saes


def test_steering_arms_grid():
    arms = steering_arms([3, 7], [0.5, 1.0])
    assert arms[0] == SteeringConfig(mode="none")
    assert len(arms) == 1 + 2 * 2 * 2
    assert {a.label for a in arms[1:3]} == {"pretrained@3 s=0.5", "pretrained@3 s=1"}
