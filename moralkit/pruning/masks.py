"""The set difference of two importance rankings, and pruning it in memory with exact restore.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) Wei et al.'s
``wandg_set_difference``: per linear layer, the top-``q`` fraction of weights by the *target*
score minus the top-``p`` fraction by the *retain* (utility) score; the weights left are zeroed.
Their command-line defaults are ``p = q = 0.5`` (:data:`WEI_DEFAULT_P`, :data:`WEI_DEFAULT_Q`);
their README example uses ``p = q = 0.1`` (:data:`WEI_README_P`, :data:`WEI_README_Q`).

:func:`pruned` zeroes a mask inside a ``with`` block and writes the saved values back on exit,
also after an exception, so the model's weights are bit-identical afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from moralkit.pruning.importance import ImportanceIndex, linear_layers

WEI_DEFAULT_P = 0.5  # --p default of Wei et al.'s main.py
WEI_DEFAULT_Q = 0.5  # --q default of Wei et al.'s main.py
WEI_README_P = 0.1  # the README's set-difference example
WEI_README_Q = 0.1


@dataclass(frozen=True)
class PruneMask:
    """Flat weight indices to zero, per linear layer (sorted, int64), and how they were chosen."""

    indices: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, int]]
    label: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def n_pruned(self) -> int:
        return int(sum(len(v) for v in self.indices.values()))

    @property
    def n_weights(self) -> int:
        return int(sum(r * c for r, c in self.shapes.values()))

    @property
    def fraction(self) -> float:
        """Pruned share of the block linear weights."""
        return self.n_pruned / self.n_weights if self.n_weights else 0.0

    def global_ids(self) -> np.ndarray:
        """One id per pruned weight across layers (layer offset + flat index), sorted."""
        out, offset = [], 0
        for name, (rows, cols) in self.shapes.items():
            out.append(self.indices.get(name, np.zeros(0, np.int64)) + offset)
            offset += rows * cols
        return np.concatenate(out) if out else np.zeros(0, np.int64)


def check_fraction(name: str, value: float) -> float:
    if not 0 <= float(value) <= 1:
        raise ValueError(f"{name}={value} must be a fraction in [0, 1]")
    return float(value)


def set_difference(
    target: ImportanceIndex, retain: ImportanceIndex | None, p: float, q: float, label: str = ""
) -> PruneMask:
    """Per layer: top-``q`` of ``target`` minus top-``p`` of ``retain`` (None: nothing kept).

    Both indices must describe the same layers and shapes (same model).
    """
    q, p = check_fraction("q", q), check_fraction("p", p)
    if retain is not None and retain.shapes != target.shapes:
        raise ValueError("target and retain scores come from different layers or shapes")
    wanted = target.select(q)
    kept = retain.membership(p) if retain is not None and p > 0 else {}
    indices = {n: idx[~kept[n][idx]] if n in kept else idx for n, idx in wanted.items()}
    settings = {
        "p": p,
        "q": q,
        "target": target.meta.get("calibration", ""),
        "retain": retain.meta.get("calibration", "") if retain is not None else "",
    }
    return PruneMask(indices, dict(target.shapes), label, settings)


def jaccard(a: PruneMask, b: PruneMask) -> float:
    """|A ∩ B| / |A ∪ B| over all layers (NaN when both are empty)."""
    ga, gb = a.global_ids(), b.global_ids()
    union = len(np.union1d(ga, gb))
    return len(np.intersect1d(ga, gb, assume_unique=True)) / union if union else float("nan")


@contextmanager
def pruned(model: nn.Module, mask: PruneMask | None) -> Iterator[nn.Module]:
    """Zero ``mask``'s weights of ``model`` inside the block; restore them exactly on exit.

    The original values at the masked positions are copied before zeroing and written back in
    ``finally``, so the weights are bit-identical afterwards, also after an exception. ``None``
    prunes nothing (the unpruned condition of a sweep).
    """
    if mask is None or mask.n_pruned == 0:
        yield model
        return
    layers = linear_layers(model)
    missing = sorted(set(mask.indices) - set(layers))
    if missing:
        raise ValueError(f"mask names layers the model does not have: {missing[:3]}")
    saved: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for name, idx in mask.indices.items():
                if len(idx) == 0:
                    continue
                flat = layers[name].weight.view(-1)
                where = torch.as_tensor(idx, device=flat.device)
                saved.append((flat, where, flat[where].clone()))
                flat[where] = 0
        yield model
    finally:
        with torch.no_grad():
            for flat, where, values in saved:
                flat[where] = values
