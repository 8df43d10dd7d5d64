"""Edit value neurons while the model runs: the γ rule, reverse mode and random control.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. The rule follows the
probable author code (``007zzZZZ/llm-value-neuron``): at every forward call ("step"), a fresh
random ``edit_fraction`` (90%) of the boosted neurons get::

    gate += P * γ * sigmoid(sharpness * (diff - midpoint))      (sharpness 10, midpoint 0.15)

where ``P`` is the neuron's P(gate > 0) on its own pole's prompts and ``diff`` its contrast
score; the suppressed (opposite-pole) neurons are clamped to ``min(gate, 0)``. The edit acts at
every position (prompt and generated tokens). γ = 0 is the unedited model: the clamp is part of
the edit, so with γ = 0 no hook is attached at all (the author code clamps at every γ it runs,
the smallest being 0.1).

Modes (:func:`edit_sets`): ``value`` boosts the target's neurons and clamps the opposite's;
``reverse`` swaps the two; ``random`` uses neuron sets of the same size per layer drawn at
random, carrying the same ``P`` and ``diff`` values (a size- and magnitude-matched control; the
author code's random mode instead boosts 90% of *all* neurons by a constant).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from moralkit.neurons.hooks import gate_hooks

EDIT_MODES: tuple[str, ...] = ("value", "reverse", "random")


@dataclass(frozen=True)
class EditConfig:
    """Settings of one edit (defaults: the probable author code's)."""

    gamma: float = 1.0
    edit_fraction: float = 0.9
    sharpness: float = 10.0
    midpoint: float = 0.15
    clamp_opposite: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.edit_fraction <= 1.0:
            raise ValueError(f"edit_fraction must lie in [0, 1], got {self.edit_fraction}")


@dataclass(frozen=True)
class NeuronSet:
    """Selected neurons as parallel arrays (from a contrast table)."""

    layer: np.ndarray
    neuron: np.ndarray
    diff: np.ndarray
    p_active: np.ndarray

    @classmethod
    def from_table(cls, table: pd.DataFrame) -> NeuronSet:
        missing = [c for c in ("layer", "neuron", "diff", "p_active") if c not in table.columns]
        if missing:
            raise ValueError(f"neuron table lacks columns {missing}")
        return cls(
            table["layer"].to_numpy(int),
            table["neuron"].to_numpy(int),
            table["diff"].to_numpy(float),
            table["p_active"].to_numpy(float),
        )

    def __len__(self) -> int:
        return len(self.layer)

    def per_layer(self, device: torch.device | str = "cpu") -> dict[int, tuple[torch.Tensor, ...]]:
        """``{layer: (neuron indices, diff, P)}`` as tensors."""
        out = {}
        for layer in np.unique(self.layer):
            rows = self.layer == layer
            out[int(layer)] = (
                torch.as_tensor(self.neuron[rows], dtype=torch.long, device=device),
                torch.as_tensor(self.diff[rows], dtype=torch.float32, device=device),
                torch.as_tensor(self.p_active[rows], dtype=torch.float32, device=device),
            )
        return out


def random_like(neurons: NeuronSet, width: int, seed: int) -> NeuronSet:
    """Random neurons with the same count per layer, carrying the same ``diff`` and ``P``."""
    rng = np.random.default_rng(seed)
    picked = np.empty_like(neurons.neuron)
    for layer in np.unique(neurons.layer):
        rows = np.flatnonzero(neurons.layer == layer)
        picked[rows] = rng.choice(width, size=len(rows), replace=False)
    return NeuronSet(neurons.layer.copy(), picked, neurons.diff.copy(), neurons.p_active.copy())


def edit_sets(
    target: pd.DataFrame, opposite: pd.DataFrame, mode: str, width: int, seed: int = 0
) -> tuple[NeuronSet, NeuronSet]:
    """(boosted, clamped) neuron sets for a mode of :data:`EDIT_MODES`."""
    boost, clamp = NeuronSet.from_table(target), NeuronSet.from_table(opposite)
    if mode == "value":
        return boost, clamp
    if mode == "reverse":
        return clamp, boost
    if mode == "random":
        return random_like(boost, width, seed), random_like(clamp, width, seed + 1)
    raise ValueError(f"edit mode must be one of {EDIT_MODES}, got {mode!r}")


def boost_amount(diff: torch.Tensor, p_active: torch.Tensor, config: EditConfig) -> torch.Tensor:
    """``P * γ * sigmoid(sharpness * (diff - midpoint))`` per neuron."""
    return p_active * config.gamma * torch.sigmoid(config.sharpness * (diff - config.midpoint))


@contextmanager
def edit_neurons(
    model: torch.nn.Module,
    boost: NeuronSet,
    clamp: NeuronSet | None = None,
    config: EditConfig | None = None,
) -> Iterator[None]:
    """Apply the edit rule (module docstring) inside the block; hooks always removed."""
    config = config or EditConfig()
    if config.gamma == 0:
        yield  # the unedited model, bit for bit
        return
    device = next(model.parameters()).device
    boosted = {
        layer: (idx, boost_amount(diff, p, config))
        for layer, (idx, diff, p) in boost.per_layer(device).items()
    }
    clamped = {}
    if clamp is not None and config.clamp_opposite:
        clamped = {layer: idx for layer, (idx, _, _) in clamp.per_layer(device).items()}
    generator = torch.Generator(device="cpu").manual_seed(config.seed)

    def hook(layer: int, gate: torch.Tensor) -> torch.Tensor | None:
        if layer not in boosted and layer not in clamped:
            return None
        gate = gate.clone()
        if layer in clamped:
            idx = clamped[layer]
            gate[..., idx] = gate[..., idx].clamp(max=0)
        if layer in boosted:
            idx, amount = boosted[layer]
            chosen = torch.rand(len(idx), generator=generator) <= config.edit_fraction
            chosen = chosen.to(idx.device)
            gate[..., idx[chosen]] += amount[chosen].to(gate.dtype)
        return gate

    layers = sorted(set(boosted) | set(clamped))
    with gate_hooks(model, hook, layers):
        yield
