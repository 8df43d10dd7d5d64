"""Where value neurons live: the gate activation inside each gated MLP, and hooks on it.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. A "neuron" is one of the
``intermediate_size`` channels of a decoder layer's gated MLP::

    down_proj( act_fn(gate_proj(x)) * up_proj(x) )
               ^^^^^^^^^^^^^^^^^^^^ the gate activation

- Llama-style models (SmolLM2) use ``act_fn = SiLU``: the hook point is SiLU(gate), before it
  multiplies ``up`` (the point the probable author code ``007zzZZZ/llm-value-neuron`` hooks);
- Gemma-3 uses a gated GELU (``gelu_pytorch_tanh``): the equivalent point is GELU-tanh(gate),
  before it multiplies ``up``. Both activations can be slightly negative, so "active" means > 0
  for both.

The hook is a forward hook on each layer's ``act_fn`` module: its output *is* the gate
activation, and a hook that returns a tensor replaces it (that is how editing works). Every
context manager here removes its hooks on exit, also when the block raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from moralkit.models.decoder import find_decoder

#: What the hook point is, per MLP class (shown in the chapter and provenance).
GATE_POINTS: dict[str, str] = {
    "LlamaMLP": "SiLU(gate_proj(x)), before it multiplies up_proj(x)",
    "Qwen2MLP": "SiLU(gate_proj(x)), before it multiplies up_proj(x)",
    "Gemma3MLP": "GELU-tanh(gate_proj(x)) (gated GELU), before it multiplies up_proj(x)",
}
_MLP_PARTS = ("gate_proj", "up_proj", "down_proj", "act_fn")

#: A gate hook: (layer index, gate activation) -> replacement tensor or None (keep).
GateHook = Callable[[int, torch.Tensor], torch.Tensor | None]


def gated_mlps(model: nn.Module) -> list[nn.Module]:
    """The gated MLP of every decoder layer; ValueError if a layer's MLP is not gated."""
    mlps = []
    for index, layer in enumerate(find_decoder(model).layers):
        mlp = getattr(layer, "mlp", None)
        missing = [p for p in _MLP_PARTS if mlp is None or not hasattr(mlp, p)]
        if missing:
            kind = type(mlp).__name__ if mlp is not None else "no .mlp"
            raise ValueError(
                f"layer {index} of {type(model).__name__} has {kind}, not a gated MLP "
                f"(lacks {missing}); value neurons need gate_proj/up_proj/down_proj/act_fn"
            )
        mlps.append(mlp)
    return mlps


def gate_modules(model: nn.Module) -> list[nn.Module]:
    """Each layer's activation module, checked to be distinct (one hook per layer)."""
    modules = [mlp.act_fn for mlp in gated_mlps(model)]
    if len({id(m) for m in modules}) != len(modules):
        raise ValueError(
            f"{type(model).__name__} shares one act_fn module between layers; per-layer gate "
            "hooks cannot tell the layers apart"
        )
    if not all(isinstance(m, nn.Module) for m in modules):
        raise ValueError(f"act_fn of {type(model).__name__} is a function, not a hookable module")
    return modules


def gate_width(model: nn.Module) -> int:
    """Neurons per layer (the MLP's intermediate size)."""
    return int(gated_mlps(model)[0].gate_proj.out_features)


def describe_gate_point(model: nn.Module) -> str:
    """One line naming the hooked activation for this model's MLP class."""
    name = type(gated_mlps(model)[0]).__name__
    return GATE_POINTS.get(name, f"act_fn(gate_proj(x)) of {name}, before it multiplies up")


def resolve_hook_layers(model: nn.Module, layers: Sequence[int] | None) -> list[int]:
    """``layers`` (None = all; negative counts from the end) as sorted valid indices."""
    depth = len(find_decoder(model).layers)
    if layers is None:
        return list(range(depth))
    resolved = sorted({int(i) + depth if int(i) < 0 else int(i) for i in layers})
    bad = [i for i in resolved if not 0 <= i < depth]
    if bad:
        raise ValueError(f"layers {bad} out of range for a model with {depth} layers")
    return resolved


@contextmanager
def gate_hooks(
    model: nn.Module, hook: GateHook, layers: Sequence[int] | None = None
) -> Iterator[None]:
    """Call ``hook(layer, gate_activation)`` on every forward; a returned tensor replaces it."""
    modules = gate_modules(model)
    handles = []
    try:
        for index in resolve_hook_layers(model, layers):

            def forward_hook(_module, _inputs, output, index=index):
                return hook(index, output)

            handles.append(modules[index].register_forward_hook(forward_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def capture_gate(
    model: nn.Module, layers: Sequence[int] | None = None
) -> Iterator[dict[int, list[torch.Tensor]]]:
    """Record the gate activation of each forward: ``{layer: [tensor per call]}`` (CPU, fp32)."""
    captured: dict[int, list[torch.Tensor]] = {i: [] for i in resolve_hook_layers(model, layers)}

    def record(index: int, activation: torch.Tensor) -> None:
        captured[index].append(activation.detach().float().cpu().clone())

    with gate_hooks(model, record, layers):
        yield captured


class ActiveCounter:
    """Per-(layer, neuron) counts over tokens: how often the gate is > 0, and its sum.

    Set :attr:`mask` (``(batch, seq)`` bool, True = count this token) before each forward;
    with ``decode_only`` only single-token calls (generation steps with a KV cache) count, as
    in the probable author code, which counts generated tokens.
    """

    def __init__(self, n_layers: int, width: int, decode_only: bool = False) -> None:
        self.positive = torch.zeros(n_layers, width, dtype=torch.float64)
        self.total = torch.zeros(n_layers, width, dtype=torch.float64)
        self.tokens = np.zeros(n_layers, dtype=np.int64)
        self.mask: torch.Tensor | None = None
        self.decode_only = decode_only

    def __call__(self, index: int, activation: torch.Tensor) -> None:
        if self.decode_only and activation.shape[-2] != 1:
            return
        flat = activation.detach().float()
        if self.mask is not None and not self.decode_only:
            flat = flat[self.mask.to(flat.device)]
        else:
            flat = flat.reshape(-1, flat.shape[-1])
        self.positive[index] += (flat > 0).sum(0).double().cpu()
        self.total[index] += flat.sum(0).double().cpu()
        self.tokens[index] += flat.shape[0]

    def probabilities(self) -> np.ndarray:
        """P(gate > 0) per (layer, neuron); ValueError when no token was counted."""
        return (self.positive / self._tokens()).numpy()

    def means(self) -> np.ndarray:
        """Mean gate activation per (layer, neuron)."""
        return (self.total / self._tokens()).numpy()

    def _tokens(self) -> torch.Tensor:
        if (self.tokens == 0).any():
            raise ValueError("no token was counted for some layers (empty texts or no decode)")
        return torch.as_tensor(self.tokens, dtype=torch.float64)[:, None]
