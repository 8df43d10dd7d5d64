"""Chapter 09's computation for every model: value neurons, the γ sweep and the bridge.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. :func:`value_neurons`
loads one model at a time and runs :func:`~moralkit.neurons.values.locate_value_neurons`, then
:func:`~moralkit.neurons.sweep.value_sweep` with those neurons and
:func:`~moralkit.neurons.foundation_overlap.foundation_value_overlap` against them; the
notebook and any workflow job call it alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import pandas as pd

from moralkit.neurons.contrast import ContrastConfig
from moralkit.neurons.foundation_overlap import FoundationOverlapConfig, foundation_value_overlap
from moralkit.neurons.hooks import describe_gate_point
from moralkit.neurons.results import FoundationOverlapResult, ValueNeuronsResult, ValueSweepResult
from moralkit.neurons.sweep import SweepConfig, value_sweep
from moralkit.neurons.values import ValueNeuronsConfig, locate_value_neurons

if TYPE_CHECKING:
    from moralkit.models import LoadedModel
    from moralkit.records import MoralRecords


class ValueNeuronAnalysis(NamedTuple):
    """The chapter's three results over all models, and the hooked activation per model."""

    value_neurons: ValueNeuronsResult
    sweep: ValueSweepResult
    bridge: FoundationOverlapResult
    gate_points: pd.DataFrame  # index: model; column "hooked activation"


def value_neurons(
    names: Sequence[str],
    items: pd.DataFrame,
    records: MoralRecords,
    contrast: ContrastConfig | None = None,
    values: ValueNeuronsConfig | None = None,
    sweep: SweepConfig | None = None,
    bridge: FoundationOverlapConfig | None = None,
    load: Callable[[str], LoadedModel] | None = None,
) -> ValueNeuronAnalysis:
    """Locate, edit and bridge value neurons in each model of ``names``, results combined.

    Models are loaded one at a time with ``load`` (a chapter passes ``ch.load_model``, which
    records each model in the provenance; default :func:`moralkit.models.load_model`).
    """
    from moralkit.models import load_model

    maps, sweeps, bridges, gate_points = [], [], [], {}
    for name in names:
        loaded = (load or load_model)(name)
        gate_points[loaded.name] = describe_gate_point(loaded.model)
        found = locate_value_neurons(loaded, items, contrast, values)
        maps.append(found)
        sweeps.append(value_sweep(loaded, found["neurons"], items, sweep))
        bridges.append(
            foundation_value_overlap(loaded, records, found["neurons"], contrast, bridge)
        )
        del loaded
    return ValueNeuronAnalysis(
        ValueNeuronsResult.concat(maps),
        ValueSweepResult.concat(sweeps),
        FoundationOverlapResult.concat(bridges),
        pd.Series(gate_points, name="hooked activation").to_frame(),
    )
