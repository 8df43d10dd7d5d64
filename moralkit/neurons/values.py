"""Value neurons of one model: the contrast for each pair of opposing Schwartz values.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. For each opposing pair
(Openness to Change ↔ Conservation, Self-Transcendence ↔ Self-Enhancement) the prompts of one
pole are the ``find`` items of that dimension in the value template, those of the other pole
the ``find`` items of the opposite dimension; :func:`moralkit.neurons.contrast.contrast_poles`
gives both poles' neurons from one pair of counts. ``measure`` items are never used here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from moralkit.data.valuebench import SCHWARTZ_DIMENSIONS, value_prompts
from moralkit.neurons.contrast import ContrastConfig, contrast_poles, neuron_stats
from moralkit.neurons.hooks import gate_width
from moralkit.neurons.overlap import layer_counts, overlap_stats
from moralkit.neurons.results import ValueNeuronsResult

if TYPE_CHECKING:
    from moralkit.models import LoadedModel

#: The value prompt, after the probable author code's "Value: ... Question: ..." layout.
VALUE_TEMPLATE = "Value: {dimension} ({value})\nQuestion: {item}\nAnswer:"
PAIRS: tuple[tuple[str, str], ...] = (
    ("Openness to Change", "Conservation"),
    ("Self-Transcendence", "Self-Enhancement"),
)


@dataclass(frozen=True)
class ValueNeuronsConfig:
    """The value prompt template and which item split finds the neurons."""

    template: str = VALUE_TEMPLATE
    split: str = "find"


def locate_value_neurons(
    loaded: LoadedModel,
    items: pd.DataFrame,
    contrast: ContrastConfig | None = None,
    config: ValueNeuronsConfig | None = None,
) -> ValueNeuronsResult:
    """Value neurons of all four higher-order values, their maps, sparsity and overlaps."""
    contrast = contrast or ContrastConfig()
    config = config or ValueNeuronsConfig()
    finding = items[items["split"] == config.split]
    tables = []
    for dim_a, dim_b in PAIRS:
        prompts = [
            value_prompts(finding[finding["dimension"] == d], config.template)
            for d in (dim_a, dim_b)
        ]
        if not all(prompts):
            raise ValueError(f"no {config.split!r} items for {dim_a} or {dim_b}")
        stats_a = neuron_stats(loaded, prompts[0], contrast)
        stats_b = neuron_stats(loaded, prompts[1], contrast)
        pole_a, pole_b, _ = contrast_poles(stats_a, stats_b, contrast)
        tables += [pole_a.assign(dimension=dim_a), pole_b.assign(dimension=dim_b)]
    neurons = pd.concat(tables, ignore_index=True).assign(model=loaded.name)
    n_layers, width = loaded.n_layers, gate_width(loaded.model)
    neurons = neurons[
        ["model", "dimension", *[c for c in neurons if c not in ("model", "dimension")]]
    ]
    return ValueNeuronsResult(
        tables={
            "neurons": neurons,
            "per_layer": per_layer_table(neurons, n_layers, width),
            "sparsity": sparsity_table(neurons, n_layers, width),
            "overlap": dimension_overlap(neurons, n_layers, width),
        },
        config={"contrast": contrast, "values": config},
    )


def per_layer_table(neurons: pd.DataFrame, n_layers: int, width: int) -> pd.DataFrame:
    """Neurons per (model, dimension, layer), including empty layers, and their fraction."""
    rows = []
    for (model, dimension), group in neurons.groupby(["model", "dimension"], sort=False):
        counts = layer_counts(group, n_layers)
        for layer, count in enumerate(counts):
            rows.append(
                {
                    "model": model,
                    "dimension": dimension,
                    "layer": layer,
                    "relative_depth": layer / max(n_layers - 1, 1),
                    "n_neurons": int(count),
                    "fraction_of_layer": count / width,
                }
            )
    return pd.DataFrame(rows)


def sparsity_table(neurons: pd.DataFrame, n_layers: int, width: int) -> pd.DataFrame:
    """Selected neurons per (model, dimension) as a fraction of all L x W gate neurons."""
    counts = neurons.groupby(["model", "dimension"], sort=False).size().rename("n_neurons")
    table = counts.reset_index()
    table["n_gate_neurons"] = n_layers * width
    table["fraction"] = table["n_neurons"] / table["n_gate_neurons"]
    return table


def dimension_overlap(neurons: pd.DataFrame, n_layers: int, width: int) -> pd.DataFrame:
    """Pairwise overlap of the four value dimensions' neuron sets, per model."""
    rows = []
    for model, group in neurons.groupby("model", sort=False):
        present = [d for d in SCHWARTZ_DIMENSIONS if d in set(group["dimension"])]
        for dim_a, dim_b in itertools.combinations(present, 2):
            stats = overlap_stats(
                group[group["dimension"] == dim_a],
                group[group["dimension"] == dim_b],
                n_layers,
                width,
            )
            rows.append({"model": model, "dimension_a": dim_a, "dimension_b": dim_b, **stats})
    return pd.DataFrame(rows)
