"""Gate hooks and the γ edit on tiny random models (chapter 09, value neurons)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from moralkit.models.decoder import find_decoder
from moralkit.models.tiny import build_tiny_model, build_tiny_tokenizer_for
from moralkit.neurons.edit import EditConfig, NeuronSet, boost_amount, edit_neurons, random_like
from moralkit.neurons.hooks import capture_gate, gate_modules, gate_width

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["Helping a friend in need.", "Telling the truth when it is hard to do."]


def _model(name: str):
    return build_tiny_model(name), build_tiny_tokenizer_for(name)


def _batch(tokenizer):
    tokenizer.padding_side = "right"
    return tokenizer(TEXTS, return_tensors="pt", padding=True)


def _manual_gate(name: str, mlp, x: torch.Tensor) -> torch.Tensor:
    pre = x @ mlp.gate_proj.weight.T
    if name == "tiny-gemma3":
        return F.gelu(pre, approximate="tanh")
    return F.silu(pre)


def _neuron_set(layers, neurons, diff=0.5, p=0.8) -> NeuronSet:
    n = len(layers)
    return NeuronSet(
        torch.tensor(layers).numpy(),
        torch.tensor(neurons).numpy(),
        torch.full((n,), diff).numpy(),
        torch.full((n,), p).numpy(),
    )


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3"])
def test_hook_sees_exactly_the_gate_activation(name):
    model, tokenizer = _model(name)
    mlps = [layer.mlp for layer in find_decoder(model).layers]
    inputs, outputs = {}, {}
    handles = []
    for i, mlp in enumerate(mlps):
        handles.append(mlp.register_forward_pre_hook(lambda m, a, i=i: inputs.__setitem__(i, a[0])))
        handles.append(mlp.register_forward_hook(lambda m, a, o, i=i: outputs.__setitem__(i, o)))
    try:
        with torch.no_grad(), capture_gate(model) as captured:
            model(**_batch(tokenizer))
    finally:
        for h in handles:
            h.remove()
    for i, mlp in enumerate(mlps):
        gate = captured[i][0]
        assert gate.shape[-1] == gate_width(model)
        torch.testing.assert_close(gate, _manual_gate(name, mlp, inputs[i]), rtol=1e-5, atol=1e-6)
        rebuilt = mlp.down_proj(gate * mlp.up_proj(inputs[i]))
        torch.testing.assert_close(rebuilt, outputs[i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3"])
def test_gamma_zero_is_bit_identical_and_gamma_positive_is_not(name):
    model, tokenizer = _model(name)
    batch = _batch(tokenizer)
    boost = _neuron_set([0, 1, 1], [3, 5, 7])
    clamp = _neuron_set([0, 2], [4, 9])
    with torch.no_grad():
        plain = model(**batch).logits
        with edit_neurons(model, boost, clamp, EditConfig(gamma=0.0)):
            zero = model(**batch).logits
        with edit_neurons(model, boost, clamp, EditConfig(gamma=2.0)):
            edited = model(**batch).logits
    assert torch.equal(plain, zero)
    assert not torch.allclose(plain, edited)


def test_edit_adds_the_rule_and_clamps_the_opposite():
    model, tokenizer = _model("tiny-llama")
    batch = _batch(tokenizer)
    boost = _neuron_set([1, 1], [2, 6], diff=0.3, p=0.7)
    clamp = _neuron_set([1], [11])
    config = EditConfig(gamma=1.5, edit_fraction=1.0)
    with torch.no_grad():
        with capture_gate(model, [0]) as before_0:
            model(**batch)
        # layer 1's input depends only on layer 0, which is not edited: compare layer 1 directly
        with capture_gate(model, [1]) as plain:
            model(**batch)
        with edit_neurons(model, boost, clamp, config), capture_gate(model, [1]) as edited:
            model(**batch)
    assert before_0[0]  # layer 0 ran
    plain, edited = plain[1][0], edited[1][0]
    amount = boost_amount(torch.tensor(0.3), torch.tensor(0.7), config)
    torch.testing.assert_close(edited[..., [2, 6]], plain[..., [2, 6]] + amount)
    torch.testing.assert_close(edited[..., 11], plain[..., 11].clamp(max=0))
    untouched = [i for i in range(plain.shape[-1]) if i not in (2, 6, 11)]
    assert torch.equal(edited[..., untouched], plain[..., untouched])


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) for m in gate_modules(model))


def test_hooks_removed_on_exit_and_on_exception():
    model, tokenizer = _model("tiny-llama")
    boost, clamp = _neuron_set([0, 2], [1, 2]), _neuron_set([1], [3])
    assert _hook_count(model) == 0
    with edit_neurons(model, boost, clamp, EditConfig(gamma=1.0)):
        assert _hook_count(model) == 3  # layers 0 and 2 boosted, 1 clamped
    assert _hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with edit_neurons(model, boost, clamp, EditConfig(gamma=1.0)):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with capture_gate(model):
            raise RuntimeError("boom")
    assert _hook_count(model) == 0


def test_random_control_matches_counts_per_layer():
    neurons = _neuron_set([0, 0, 0, 2, 2], [1, 2, 3, 4, 5])
    control = random_like(neurons, width=64, seed=3)
    assert list(control.layer) == list(neurons.layer)
    for layer in (0, 2):
        picked = control.neuron[control.layer == layer]
        assert len(set(picked)) == len(picked)
        assert ((picked >= 0) & (picked < 64)).all()
    assert list(control.neuron) != list(neurons.neuron)
    assert list(random_like(neurons, 64, 3).neuron) == list(control.neuron)
