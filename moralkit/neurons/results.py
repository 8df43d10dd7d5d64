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

from moralkit.results import AnalysisResult, ClaimValue


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


class ValueSweepResult(AnalysisResult):
    """Tables ``ratings`` (per item, target, mode, γ), ``sweep`` (mean shift with intervals over
    items), ``effect`` (target minus opposite shift at the largest γ), ``fluency`` and
    ``answers`` (greedy answers at a few γ; may be empty)."""

    TABLES: ClassVar[tuple[str, ...]] = ("ratings", "sweep", "effect", "fluency", "answers")
    BEST_TABLE: ClassVar[str] = "effect"
    BEST_COLUMN: ClassVar[str] = "separation"
    BEST_GROUP: ClassVar[tuple[str, ...]] = ("model", "mode")

    def claim(self) -> list[ClaimValue]:
        effect = self.tables["effect"]
        value = effect[effect["mode"] == "value"]
        if value.empty:
            return []
        by_mode = {
            mode: _per_model(effect[effect["mode"] == mode], "separation")
            for mode in effect["mode"].unique()
        }
        return [
            ClaimValue(
                "value_neurons_steer",
                round(float(value["separation"].mean()), 4),
                note=(
                    "mean over models and target values of (target − opposite) shift of the "
                    f"expected PVQ rating at γ = {value['gamma'].iloc[0]:g}, value mode"
                ),
                extra={"per_mode": by_mode},
            )
        ]


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
