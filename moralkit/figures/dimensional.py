"""Figures for dimensional indifference.

(paper §2.5; book: Methods › Dimensional, methods/dimensional.md)

Inputs are the ``r2`` table of :class:`moralkit.diagnostics.dimensional.DimensionalResult` and
:meth:`~moralkit.diagnostics.dimensional.DimensionalResult.at_best_layer`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from moralkit.diagnostics.dimensional import PAPER_BEST_R2
from moralkit.figures.style import legend_below, model_colours, require_columns
from moralkit.foundations import DIMENSIONS

PROBE_TITLES = {
    "paper": "paper's probe (raw activations, AdamW)",
    "ridge_cv": "cross-validated ridge (standardised)",
}
#: Line style per (weights, control).
CONDITION_STYLES: dict[tuple[str, str], tuple[str, str]] = {
    ("trained", "none"): ("-", "trained model"),
    ("trained", "shuffled"): ("--", "shuffled targets"),
    ("untrained", "none"): (":", "untrained twin"),
    ("untrained", "shuffled"): ("-.", "untrained, shuffled"),
}
PAPER_LINE_LABEL = f"paper's best (adjusted R² {PAPER_BEST_R2})"
PAPER_LINE_COLOUR = "firebrick"


def plot_r2_by_depth(table: pd.DataFrame, floor: float = -1.0) -> Figure:
    """Overall probe R² vs relative depth: one panel per probe, one colour per model.

    Line style marks the condition (trained model, shuffled targets, untrained twin). The
    dash-dotted red line is the paper's best value. R² below ``floor`` is drawn at the panel's
    bottom edge (the paper's probe on raw activations can go far below 0).
    """
    require_columns(
        table,
        ["model", "relative_depth", "weights", "probe", "control", "dimension", "r2"],
        "dimensional",
    )
    overall = table[table["dimension"] == "overall"]
    probes = list(dict.fromkeys(overall["probe"]))
    models = list(dict.fromkeys(overall["model"]))
    colours = model_colours(models)
    fig, axes = plt.subplots(1, len(probes), figsize=(6.0 * len(probes), 3.8), sharey=True)
    axes = np.atleast_1d(axes)
    lowest = overall["r2"].min()
    bottom = max(floor, min(-0.1, lowest - 0.05)) if np.isfinite(lowest) else floor
    conditions_seen = []
    for ax, probe in zip(axes, probes, strict=True):
        rows = overall[overall["probe"] == probe]
        for model in models:
            for condition, (style, _) in CONDITION_STYLES.items():
                g = rows[
                    (rows["model"] == model)
                    & (rows["weights"] == condition[0])
                    & (rows["control"] == condition[1])
                ].sort_values("relative_depth")
                if g.empty:
                    continue
                if condition not in conditions_seen:
                    conditions_seen.append(condition)
                y = g["r2"].clip(lower=bottom)
                ax.plot(g["relative_depth"], y, color=colours[model], ls=style, lw=1.4, marker=".")
        ax.axhline(PAPER_BEST_R2, color=PAPER_LINE_COLOUR, ls="-.", lw=1.2)
        ax.text(0.01, PAPER_BEST_R2, PAPER_LINE_LABEL, va="bottom", fontsize=8, color="0.2")
        if (rows["r2"] < bottom).any():
            ax.text(
                0.99,
                bottom,
                f"values below {bottom:g} drawn at {bottom:g}",
                ha="right",
                va="bottom",
                fontsize=8,
                color="0.3",
                transform=ax.get_yaxis_transform(),
            )
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_title(PROBE_TITLES.get(probe, probe))
        ax.set_xlabel("relative depth")
        ax.set_ylim(bottom, 1.0)
    axes[0].set_ylabel("test / out-of-fold R²")
    handles = [Line2D([], [], color=colours[m], lw=2) for m in models]
    labels = list(models)
    for condition in conditions_seen:
        style, label = CONDITION_STYLES[condition]
        handles.append(Line2D([], [], color="0.3", ls=style))
        labels.append(label)
    handles.append(Line2D([], [], color=PAPER_LINE_COLOUR, ls="-."))
    labels.append(PAPER_LINE_LABEL)
    fig.tight_layout()
    legend_below(fig, handles, labels, fontsize=10)
    return fig


def plot_dimension_heatmap(at_best: pd.DataFrame) -> Figure:
    """Per-dimension R² at each model / probe's best layer (rows) for the ten categories.

    Red is below 0 (worse than predicting the mean), blue above. Blank cells are dimensions
    whose evaluated targets are constant (R² undefined).
    """
    require_columns(at_best, ["model", "weights", "probe", "layer", "dimension", "r2"], "at_best")
    rows = at_best.assign(
        row=lambda t: (
            t["model"]
            + np.where(t["weights"] == "untrained", " (untrained)", "")
            + " · "
            + t["probe"]
            + " · L"
            + t["layer"].astype(str)
        )
    )
    matrix = rows.pivot(index="row", columns="dimension", values="r2")
    matrix = matrix.reindex(columns=[d for d in DIMENSIONS if d in matrix.columns])
    matrix = matrix.reindex(list(dict.fromkeys(rows["row"])))
    fig, ax = plt.subplots(figsize=(9.5, 0.55 * len(matrix) + 1.8))
    # Colours saturate at -1 (far worse than predicting the mean); the numbers are exact.
    sns.heatmap(
        matrix.astype(float),
        ax=ax,
        cmap="RdBu",
        center=0.0,
        vmin=-1.0,
        vmax=1.0,
        annot=True,
        fmt=".2f",
        cbar_kws={"label": "R² (colour clipped at -1)"},
    )
    ax.set_xlabel("moral dimension")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig
