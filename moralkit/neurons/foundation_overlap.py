"""The bridge to the main paper: moral-foundation neurons and how they overlap value neurons.

paper §7(a) with the paper's ground truth (§1); book: Methods › Value neurons,
methods/value-neurons.md. The same contrast as for values (:mod:`moralkit.neurons.contrast`) is
run on the virtue vs the vice records of each moral foundation, giving a virtue-pole and a
vice-pole neuron set per foundation. Each is compared with each value dimension's neurons:
shared neurons against random sets of the same size (uniform and matched per layer; see
:mod:`moralkit.neurons.overlap`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from moralkit.foundations import FOUNDATIONS
from moralkit.neurons.contrast import ContrastConfig, locate_poles
from moralkit.neurons.hooks import gate_width
from moralkit.neurons.overlap import overlap_stats
from moralkit.neurons.results import FoundationOverlapResult
from moralkit.records import MoralRecords

if TYPE_CHECKING:
    from moralkit.models import LoadedModel


@dataclass(frozen=True)
class FoundationOverlapConfig:
    """Prompt template for records, how many records per foundation pole, and their split."""

    template: str = "{action} is morally"
    max_records: int | None = 200
    split: str | None = None
    seed: int = 0


def foundation_texts(
    records: MoralRecords, foundation: str, pole: str, config: FoundationOverlapConfig
) -> list[str]:
    """Prompts of one foundation pole (sampled down to ``max_records`` with ``seed``)."""
    table = records.table
    rows = table[(table["foundation"] == foundation) & (table["pole"] == pole)]
    if config.split is not None:
        rows = rows[rows["split"] == config.split]
    if config.max_records is not None and len(rows) > config.max_records:
        rows = rows.sample(config.max_records, random_state=config.seed)
    if "{action}" not in config.template:
        raise ValueError(f"template {config.template!r} must contain the placeholder '{{action}}'")
    return [config.template.replace("{action}", str(text)) for text in rows["text"]]


def foundation_neurons(
    loaded: LoadedModel,
    records: MoralRecords,
    contrast: ContrastConfig | None = None,
    config: FoundationOverlapConfig | None = None,
) -> pd.DataFrame:
    """Virtue-pole and vice-pole neurons of each foundation that has records of both poles."""
    contrast, config = contrast or ContrastConfig(), config or FoundationOverlapConfig()
    tables = []
    for foundation in FOUNDATIONS:
        virtue = foundation_texts(records, foundation, "virtue", config)
        vice = foundation_texts(records, foundation, "vice", config)
        if not virtue or not vice:
            continue
        pole_virtue, pole_vice, _ = locate_poles(loaded, virtue, vice, contrast)
        tables += [
            pole_virtue.assign(foundation=foundation, pole="virtue"),
            pole_vice.assign(foundation=foundation, pole="vice"),
        ]
    if not tables:
        raise ValueError("no foundation has both virtue and vice records: nothing to contrast")
    table = pd.concat(tables, ignore_index=True).assign(model=loaded.name)
    first = ["model", "foundation", "pole"]
    return table[first + [c for c in table.columns if c not in first]]


def foundation_value_overlap(
    loaded: LoadedModel,
    records: MoralRecords,
    value_neurons: pd.DataFrame,
    contrast: ContrastConfig | None = None,
    config: FoundationOverlapConfig | None = None,
) -> FoundationOverlapResult:
    """Foundation neurons of ``loaded`` and their overlap with its value neurons."""
    found = foundation_neurons(loaded, records, contrast, config)
    n_layers, width = loaded.n_layers, gate_width(loaded.model)
    values = value_neurons[value_neurons["model"] == loaded.name]
    rows = []
    for (foundation, pole), group in found.groupby(["foundation", "pole"], sort=False):
        for dimension, value_group in values.groupby("dimension", sort=False):
            stats = overlap_stats(group, value_group, n_layers, width)
            rows.append(
                {
                    "model": loaded.name,
                    "foundation": foundation,
                    "pole": pole,
                    "dimension": dimension,
                    **stats,
                }
            )
    overlap = pd.DataFrame(rows).rename(columns={"n_a": "n_foundation", "n_b": "n_value"})
    return FoundationOverlapResult(
        tables={
            "overlap": overlap,
            "foundation_neurons": found,
            "summary": overlap_summary(overlap),
        },
        config={"contrast": contrast, "bridge": config},
    )


def overlap_summary(overlap: pd.DataFrame) -> pd.DataFrame:
    """Per (model, foundation, pole): the value dimension sharing most neurons beyond chance."""
    rows = []
    for key, group in overlap.groupby(["model", "foundation", "pole"], sort=False):
        top = group.loc[group["ratio_layer_matched"].idxmax()]
        rows.append(
            {
                "model": key[0],
                "foundation": key[1],
                "pole": key[2],
                "closest_value": top["dimension"],
                "shared": int(top["shared"]),
                "ratio_layer_matched": top["ratio_layer_matched"],
                "median_ratio_layer_matched": group["ratio_layer_matched"].median(),
            }
        )
    return pd.DataFrame(rows)
