"""The activation contrast recovers planted neurons; selection and PVQ scoring (chapter 09)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from moralkit.models import load_model
from moralkit.neurons.contrast import (
    ContrastConfig,
    NeuronStats,
    contrast_poles,
    locate_poles,
    select_neurons,
)
from moralkit.neurons.overlap import overlap_stats
from moralkit.neurons.pvq import OPTIONS, PVQConfig, expected_rating, option_logprobs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PLANTED_A = [5, 17, 40]  # fire on the marker "Q"
PLANTED_B = [9, 33]  # fire on its twin "q"


def _planted_model(delta: float = 0.05, strength: float = 60.0):
    """tiny-llama with layer-0 neurons that read one direction u, and u hidden from the rest.

    "Q" and "q" differ only along u; every other embedding and every module's output has no
    u component, and every attention and gate projection ignores u, except the planted gate
    rows. So "Q" vs "q" changes nothing but the planted neurons (RMS norms agree as well),
    which write nothing back (down_proj columns zeroed).
    """
    loaded = load_model("tiny-llama")
    model, tokenizer = loaded.model, loaded.tokenizer
    big_q, small_q = (tokenizer.encode(c, add_special_tokens=False)[0] for c in ("Q", "q"))
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        u = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
        u = u / u.norm()
        hide = torch.eye(emb.shape[1]) - torch.outer(u, u)
        emb.copy_(emb @ hide)
        base = emb[small_q].clone()
        emb[big_q], emb[small_q] = base + delta * u, base - delta * u
        for layer in model.model.layers:
            attn, ffn = layer.self_attn, layer.mlp
            for linear in (attn.q_proj, attn.k_proj, attn.v_proj, ffn.gate_proj, ffn.up_proj):
                linear.weight.copy_(linear.weight @ hide)  # reads nothing along u
            for linear in (attn.o_proj, ffn.down_proj):
                linear.weight.copy_(hide @ linear.weight)  # writes nothing along u
        mlp = model.model.layers[0].mlp
        mlp.gate_proj.weight[PLANTED_A] = strength * u
        mlp.gate_proj.weight[PLANTED_B] = -strength * u
        mlp.down_proj.weight[:, PLANTED_A + PLANTED_B] = 0.0  # and they write nothing back
    return loaded


def _texts(marker: str, n: int = 12) -> list[str]:
    rng = np.random.default_rng(1)
    alphabet = ["a", "b", " ", "c"]
    return [
        "".join(marker if rng.random() < 0.5 else rng.choice(alphabet) for _ in range(20))
        for _ in range(n)
    ]


def test_contrast_recovers_planted_neurons():
    config = ContrastConfig(top_k=len(PLANTED_A), threshold=2.0, progress=False)
    pole_a, pole_b, diff = locate_poles(_planted_model(), _texts("Q"), _texts("q"), config)
    assert set(zip(pole_a["layer"], pole_a["neuron"], strict=True)) == {(0, n) for n in PLANTED_A}
    top_b = pole_b.head(len(PLANTED_B))
    assert set(zip(top_b["layer"], top_b["neuron"], strict=True)) == {(0, n) for n in PLANTED_B}
    planted = np.zeros_like(diff, dtype=bool)
    planted[0, PLANTED_A + PLANTED_B] = True
    assert np.abs(diff[planted]).min() > 0.3
    assert np.abs(diff[~planted]).max() < 0.1


def test_mean_score_recovers_planted_neurons_too():
    config = ContrastConfig(score="mean", top_k=len(PLANTED_A), threshold=np.inf, progress=False)
    pole_a, _, _ = locate_poles(_planted_model(), _texts("Q"), _texts("q"), config)
    assert set(pole_a["neuron"]) == set(PLANTED_A) and set(pole_a["layer"]) == {0}


def test_selection_is_top_k_plus_threshold_per_pole():
    diff = np.array([[0.5, 0.05, 0.2], [-0.3, 0.12, -0.01]])
    assert list(select_neurons(diff, top_k=1, threshold=0.1)) == [0, 2, 4]
    assert list(select_neurons(-diff, top_k=2, threshold=0.1)) == [3, 5]
    stats = NeuronStats(np.full((2, 3), 0.5), np.zeros((2, 3)), 10)
    flipped = NeuronStats(0.5 - diff, np.zeros((2, 3)), 10)
    a, b, d = contrast_poles(stats, flipped, ContrastConfig(top_k=1, threshold=0.1))
    np.testing.assert_allclose(d, diff)
    assert list(zip(a["layer"], a["neuron"], strict=True)) == [(0, 0), (0, 2), (1, 1)]
    assert list(a["rank"]) == [0, 1, 2]
    assert list(zip(b["layer"], b["neuron"], strict=True)) == [(1, 0)]


def test_overlap_baselines():
    a = pd.DataFrame({"layer": [0, 0, 1], "neuron": [1, 2, 3]})
    b = pd.DataFrame({"layer": [0, 1, 1], "neuron": [2, 3, 4]})
    stats = overlap_stats(a, b, n_layers=2, width=10)
    assert stats["shared"] == 2
    assert stats["expected_random"] == pytest.approx(9 / 20)
    assert stats["expected_layer_matched"] == pytest.approx((2 * 1 + 1 * 2) / 10)
    assert stats["jaccard"] == pytest.approx(2 / 4)
    assert 0 < stats["p_value"] < 1


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3"])
def test_pvq_option_distribution(name):
    loaded = load_model(name)
    items = ["It is important to me to be rich.", "I like surprises and adventures.", "Rules."]
    plain = PVQConfig(batch_size=1, share_prefix=False)
    logprobs = option_logprobs(loaded, items, plain)
    assert logprobs.shape == (3, len(OPTIONS))
    np.testing.assert_allclose(np.exp(logprobs).sum(1), 1.0, rtol=1e-6)
    batched = option_logprobs(loaded, items, PVQConfig(batch_size=3, share_prefix=False))
    np.testing.assert_allclose(batched, logprobs, atol=1e-4)
    # the shared-prefix cache gives the same answers as full forwards
    shared = option_logprobs(loaded, items, PVQConfig(batch_size=2))
    np.testing.assert_allclose(shared, logprobs, atol=1e-4)
    rating = expected_rating(logprobs)
    assert ((rating >= 1) & (rating <= 6)).all()
    np.testing.assert_allclose(expected_rating(logprobs, [-1, 1, 1])[0], 7 - rating[0])


def test_shared_prefix_sees_edits_like_full_forwards():
    from moralkit.neurons.edit import EditConfig, NeuronSet, edit_neurons

    loaded = load_model("tiny-llama")
    items = ["I like to be the leader.", "Forgiving people matters to me."]
    boost = NeuronSet(np.array([0, 1]), np.array([3, 8]), np.array([0.4, 0.4]), np.ones(2))
    config = EditConfig(gamma=5.0, edit_fraction=1.0)  # deterministic: no random 90% draw
    with edit_neurons(loaded.model, boost, None, config):
        full = option_logprobs(loaded, items, PVQConfig(share_prefix=False))
        shared = option_logprobs(loaded, items, PVQConfig())
    plain = option_logprobs(loaded, items, PVQConfig())
    np.testing.assert_allclose(shared, full, atol=1e-4)
    assert not np.allclose(plain, full, atol=1e-3)
