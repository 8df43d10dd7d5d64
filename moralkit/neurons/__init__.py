"""Value neurons, after ValueLocate (paper §7(a); book: Methods › Value neurons,
methods/value-neurons.md).

- :mod:`~moralkit.neurons.hooks`: the gate activation of gated MLPs and hooks on it;
- :mod:`~moralkit.neurons.contrast`: score and select neurons by activation contrast;
- :mod:`~moralkit.neurons.edit`: the γ edit, reverse mode and random-neuron control;
- :mod:`~moralkit.neurons.pvq`: the PVQ answered by option log-probabilities, sample answers
  (scoring and generation: :mod:`moralkit.models.scoring`, :mod:`moralkit.models.generation`);
- :mod:`~moralkit.neurons.values`, :mod:`~moralkit.neurons.sweep`,
  :mod:`~moralkit.neurons.foundation_overlap`: the chapter's three analyses, returning the
  results of :mod:`~moralkit.neurons.results`;
- :mod:`~moralkit.neurons.recipe`: the chapter's computation over all its models.
"""

from moralkit.neurons.contrast import ContrastConfig, NeuronStats, locate_poles, neuron_stats
from moralkit.neurons.edit import EDIT_MODES, EditConfig, NeuronSet, edit_neurons, edit_sets
from moralkit.neurons.foundation_overlap import (
    FoundationOverlapConfig,
    foundation_neurons,
    foundation_value_overlap,
)
from moralkit.neurons.hooks import capture_gate, describe_gate_point, gate_hooks
from moralkit.neurons.pvq import PVQConfig, option_logprobs
from moralkit.neurons.recipe import ValueNeuronAnalysis, value_neurons
from moralkit.neurons.results import FoundationOverlapResult, ValueNeuronsResult, ValueSweepResult
from moralkit.neurons.sweep import SweepConfig, value_sweep
from moralkit.neurons.values import ValueNeuronsConfig, locate_value_neurons

__all__ = [
    "EDIT_MODES",
    "FoundationOverlapConfig",
    "ContrastConfig",
    "EditConfig",
    "FoundationOverlapResult",
    "NeuronSet",
    "NeuronStats",
    "PVQConfig",
    "SweepConfig",
    "ValueNeuronAnalysis",
    "ValueNeuronsConfig",
    "ValueNeuronsResult",
    "ValueSweepResult",
    "value_neurons",
    "capture_gate",
    "describe_gate_point",
    "edit_neurons",
    "edit_sets",
    "foundation_neurons",
    "foundation_value_overlap",
    "gate_hooks",
    "locate_poles",
    "locate_value_neurons",
    "neuron_stats",
    "option_logprobs",
    "value_sweep",
]
