"""What every diagnostic reads: which stored layers, which pooling, which seed.

:class:`DiagnosticConfig` holds the three settings all diagnostics share, each default defined
here once; every ``XConfig`` of :mod:`moralkit.diagnostics` extends it. Layers are written in
the one layer grammar of :class:`moralkit.layers.LayerSpec` (``"all"``, ``"every:K"``,
``"0,6,-1"``, a list of ints), resolved against the model's depth and then checked against the
layers the activation set actually stores (book: Methods › Activations, methods/activations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from moralkit.activation_set import POOLINGS, ActivationSet
from moralkit.layers import LayerSpec
from moralkit.records import MoralRecords

LayersArg = LayerSpec | str | int | Sequence[int] | None


@dataclass(frozen=True)
class DiagnosticConfig:
    """Settings every diagnostic shares.

    ``layers``: which layers to analyse, in the :class:`~moralkit.layers.LayerSpec` grammar;
    ``None`` means every layer the activation set stores. ``pooling``: which stored pooling to
    read (``"mean"``, the paper's plots, or ``"last"``). ``seed``: the diagnostic's resampling
    seed (permutations, bootstrap, probe initialisation).
    """

    layers: Any = None
    pooling: str = "mean"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layers is not None:
            object.__setattr__(self, "layers", LayerSpec.parse(self.layers, "layers"))
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}: expected one of {POOLINGS}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed={self.seed!r}: expected a whole number")


def stored_layers(acts: ActivationSet, layers: LayersArg = None, name: str = "layers") -> list[int]:
    """The layers to analyse: all stored ones for ``None``, else the spec resolved for this
    model's depth, each of which must be stored in ``acts``."""
    if layers is None:
        return list(acts.layers)
    chosen = LayerSpec.parse(layers, name).resolve(acts.n_model_layers, name)
    missing = [x for x in chosen if x not in acts.layers]
    if missing:
        raise ValueError(
            f"{name}: layers {missing} are not stored for {acts.model_id};"
            f" stored layers: {list(acts.layers)}"
        )
    return list(chosen)


def check_alignment(acts: ActivationSet, records: MoralRecords) -> None:
    """Raise unless the activation rows are aligned 1:1 with the records."""
    if acts.n_texts != len(records):
        raise ValueError(
            f"activations for {acts.model_id} have {acts.n_texts} rows but there are"
            f" {len(records)} records; rows must be aligned 1:1"
        )


def check_pooling(acts: ActivationSet, pooling: str) -> None:
    """Raise unless ``acts`` stores ``pooling``."""
    if pooling not in acts.poolings:
        raise ValueError(
            f"pooling={pooling!r} is not stored for {acts.model_id}; stored: {acts.poolings}"
        )
