"""Result shapes of chapter 09 (``XConfig`` -> ``XResult``, see :mod:`moralkit.results`).

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md.

- :class:`ValueNeuronsResult`: where value neurons are (maps, sparsity, overlap between values);
- :class:`ValueSweepResult`: what editing them does to PVQ answers, fluency and sample answers;
- :class:`FoundationOverlapResult`: how moral-foundation neurons overlap value neurons.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from moralkit.neurons.controls import POOLED, cell_label
from moralkit.results import (
    AnalysisResult,
    ClaimValue,
    Gate,
    claim_cell,
    gate_levels,
    merged_gates,
)


def _per_model(table: pd.DataFrame, column: str, how: str = "mean") -> dict[str, float]:
    grouped = table.groupby("model", sort=False)[column].agg(how)
    return {str(m): round(float(v), 4) for m, v in grouped.items()}


class ValueNeuronsResult(AnalysisResult):
    """Tables ``neurons`` (one row per selected neuron and value dimension), ``per_layer``,
    ``sparsity`` (fraction of all gate neurons) and ``overlap`` (between dimensions)."""

    TABLES: ClassVar[tuple[str, ...]] = ("neurons", "per_layer", "sparsity", "overlap")
    BEST_TABLE: ClassVar[str] = "sparsity"
    BEST_COLUMN: ClassVar[str] = "fraction"

    def claim(self) -> list[ClaimValue]:
        sparsity = self.tables["sparsity"]
        if sparsity.empty:
            return []
        return [
            ClaimValue(
                "value_neurons_sparse",
                round(float(sparsity["fraction"].max()), 4),
                note="largest fraction of all gate neurons selected for one value dimension",
                extra={"per_model": _per_model(sparsity, "fraction", "max")},
            )
        ]


#: gate levels of ``value_neurons_steer`` until claims.yaml's ``measure:`` states them: items
#: per role (target / opposite, pooled over the edited values) below which the t- and bootstrap
#: intervals over items do not hold their coverage, and random draws below which a percentile
#: cannot reach the 95th (20 draws: steps of 5)
STEER_GATES: dict[str, int] = {"min_items": 10, "min_random": 20}


class ValueSweepResult(AnalysisResult):
    """Tables ``ratings`` (per item, target, mode, γ, random draw), ``sweep`` (mean shift with
    intervals over items, or over draws for the random mode), ``effect`` (target minus opposite
    shift at the largest γ), ``random_control`` (the value edit's percentile among the random
    draws, per γ and target and pooled), ``random_draws`` (each draw's separation), ``fluency``
    and ``answers`` (greedy answers at a few γ; may be empty)."""

    TABLES: ClassVar[tuple[str, ...]] = (
        "ratings",
        "sweep",
        "effect",
        "random_control",
        "random_draws",
        "fluency",
        "answers",
    )
    BEST_TABLE: ClassVar[str] = "effect"
    BEST_COLUMN: ClassVar[str] = "separation"
    BEST_GROUP: ClassVar[tuple[str, ...]] = ("model", "mode")

    def judged_rows(self) -> pd.DataFrame:
        """Per model, the row of ``random_control`` the claim is judged on: at the largest γ,
        the pooled row when several values were edited, else the one edited value's."""
        control = self.tables["random_control"]
        if control.empty:
            return control
        top = control[control["gamma"] == control["gamma"].max()]
        pooled = top[top["target"] == POOLED]
        single = top[~top["model"].isin(pooled["model"])]
        return pd.concat([pooled, single], ignore_index=True)

    def claim(self) -> list[ClaimValue]:
        effect = self.tables["effect"]
        value = effect[effect["mode"] == "value"]
        if value.empty:
            return []
        by_mode = {
            mode: _per_model(effect[effect["mode"] == mode], "separation")
            for mode in effect["mode"].unique()
        }
        extra = {"per_mode": by_mode, "separation": round(float(value["separation"].mean()), 4)}
        rows = self.judged_rows()
        if rows.empty:  # no random draws: nothing to judge the edit against
            gate = Gate("random_control", False, "no random-neuron draws were run")
            return [ClaimValue("value_neurons_steer", None, extra=extra, gates=[gate])]
        levels = gate_levels("value_neurons_steer", STEER_GATES)
        cells = {cell_label(r): _steer_cell(r, levels) for r in rows.to_dict("records")}
        gates = merged_gates(cells)
        gamma = float(rows["gamma"].iloc[0])
        return [
            ClaimValue(
                "value_neurons_steer",
                round(float(rows["percentile"].min()), 2),
                note=(
                    "percentile of the value edit's separation (target minus opposite shift of "
                    f"the expected PVQ rating at γ = {gamma:g}) among random neuron sets matched "
                    "per layer; lowest over models; interval over item resamples"
                ),
                extra={**extra, "cells": cells},
                ci_low=float(rows["ci_low"].min()),
                ci_high=float(rows["ci_high"].min()),
                gates=gates,
            )
        ]


def _steer_cell(row: dict, levels: dict[str, int]) -> dict:
    items = min(row["n_target_items"], row["n_opposite_items"])
    gates = [
        Gate(
            "enough_items",
            items >= levels["min_items"],
            f"{row['n_target_items']} target and {row['n_opposite_items']} opposite items "
            f"(at least {levels['min_items']} per role wanted)",
        ),
        Gate(
            "enough_random_draws",
            row["n_random"] >= levels["min_random"],
            f"{row['n_random']} random neuron sets (at least {levels['min_random']} wanted)",
        ),
    ]
    keep = ("separation", "random_mean", "random_sd", "p_value", "n_random")
    return claim_cell(
        row["percentile"], row["ci_low"], row["ci_high"], gates, **{k: row[k] for k in keep}
    )


class FoundationOverlapResult(AnalysisResult):
    """Tables ``foundation_neurons`` (virtue vs vice contrast per foundation), ``overlap``
    (shared neurons with each value dimension against random-set baselines) and ``summary``."""

    TABLES: ClassVar[tuple[str, ...]] = ("overlap", "foundation_neurons", "summary")
    BEST_TABLE: ClassVar[str] = "overlap"
    BEST_COLUMN: ClassVar[str] = "ratio_layer_matched"

    def claim(self) -> list[ClaimValue]:
        overlap = self.tables["overlap"]
        if overlap.empty:
            return []
        ratio = overlap["ratio_layer_matched"].replace([np.inf, -np.inf], np.nan)
        return [
            ClaimValue(
                "foundation_value_neuron_overlap",
                round(float(ratio.median()), 4),
                note=(
                    "median over (foundation pole, value dimension) pairs of shared neurons / "
                    "shared expected for random sets matched per layer"
                ),
                extra={"per_model": _per_model(overlap, "ratio_layer_matched", "median")},
            )
        ]
