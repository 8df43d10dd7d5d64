"""Pooled residual-stream activations aligned with a record table.

(paper §2.1; book: Methods › Activations, methods/activations.md.)

Diagnostics read activations only through :class:`ActivationSet`, so they run the same on
cached model activations and on synthetic arrays in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

POOLINGS: tuple[str, ...] = ("mean", "last")


@dataclass
class ActivationSet:
    """Per-layer pooled activations: ``arrays[pooling]`` has shape (n_layers, n_texts, d).

    ``layers`` are 0-based decoder-layer indices (the residual stream *after* block ``i``),
    ``n_model_layers`` the model's depth, used for relative depth. Arrays may be numpy
    memmaps: :meth:`get` copies one layer into memory as float32.
    """

    arrays: dict[str, np.ndarray]
    layers: tuple[int, ...]
    n_model_layers: int
    model_id: str = "synthetic"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = tuple(int(x) for x in self.layers)
        if not self.arrays:
            raise ValueError("an ActivationSet needs at least one pooling")
        for pooling, arr in self.arrays.items():
            if pooling not in POOLINGS:
                raise ValueError(f"unknown pooling {pooling!r}; expected one of {POOLINGS}")
            if arr.ndim != 3 or arr.shape[0] != len(self.layers):
                raise ValueError(
                    f"{pooling} array has shape {arr.shape}; expected (n_layers={len(self.layers)},"
                    " n_texts, d)"
                )
        bad = [x for x in self.layers if not 0 <= x < self.n_model_layers]
        if bad:
            raise ValueError(f"layers {bad} out of range for a {self.n_model_layers}-layer model")

    @classmethod
    def from_arrays(
        cls,
        per_layer: Mapping[int, np.ndarray],
        n_model_layers: int | None = None,
        pooling: str = "mean",
        model_id: str = "synthetic",
    ) -> ActivationSet:
        """Build a set from ``{layer: (n, d) array}`` (one pooling); handy in tests."""
        layers = sorted(per_layer)
        stacked = np.stack([np.asarray(per_layer[x], dtype=np.float32) for x in layers])
        depth = n_model_layers if n_model_layers is not None else max(layers) + 1
        return cls({pooling: stacked}, tuple(layers), depth, model_id)

    @property
    def n_texts(self) -> int:
        return next(iter(self.arrays.values())).shape[1]

    @property
    def width(self) -> int:
        return next(iter(self.arrays.values())).shape[2]

    @property
    def poolings(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    def get(self, layer: int, pooling: str = "mean") -> np.ndarray:
        """The (n_texts, d) float32 matrix of one stored layer."""
        if pooling not in self.arrays:
            raise KeyError(f"pooling {pooling!r} not stored; this set has {self.poolings}")
        if layer not in self.layers:
            raise KeyError(f"layer {layer} not stored; this set has layers {list(self.layers)}")
        return np.array(self.arrays[pooling][self.layers.index(layer)], dtype=np.float32)

    def relative_depth(self, layer: int) -> float:
        """(layer + 1) / n_model_layers: 1.0 is the last decoder layer."""
        return (layer + 1) / self.n_model_layers

    def take(self, index: Sequence[int] | np.ndarray) -> ActivationSet:
        """Rows ``index`` (e.g. to align unique texts with records), loaded into memory."""
        idx = np.asarray(index, dtype=np.int64)
        arrays = {p: np.asarray(a[:, idx, :], dtype=np.float32) for p, a in self.arrays.items()}
        return self._with(arrays, self.layers)

    def select_layers(self, layers: Sequence[int]) -> ActivationSet:
        """A set restricted to some of the stored layers."""
        missing = [x for x in layers if x not in self.layers]
        if missing:
            raise KeyError(f"layers {missing} not stored; this set has {list(self.layers)}")
        pos = [self.layers.index(x) for x in layers]
        arrays = {p: a[pos] for p, a in self.arrays.items()}
        return self._with(arrays, tuple(layers))

    def _with(self, arrays: dict[str, np.ndarray], layers: tuple[int, ...]) -> ActivationSet:
        return ActivationSet(arrays, layers, self.n_model_layers, self.model_id, dict(self.meta))
