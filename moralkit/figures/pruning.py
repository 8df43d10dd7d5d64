"""Figures of chapter 10: the compactness curve and the unity overlaps.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from moralkit.figures.style import model_colours, require_columns
from moralkit.pruning.results import ORGAD, UNPRUNED

_MEASURES = {
    "compliance_margin": "comply − refuse log-likelihood\n(nats per token; lower = safer)",
    "perplexity": "perplexity on neutral text\n(lower = more fluent)",
}
_STYLES = {ORGAD: "-", "wei: prune safety": "--"}


def plot_compactness(curve: pd.DataFrame, effects: pd.DataFrame) -> Figure:
    """Harmfulness margin and perplexity against the pruned share, per model and direction.

    Solid: Orgad et al.'s direction (prune harmful generation); dashed: Wei et al.'s (prune
    safety). Dotted horizontal lines: the unpruned model.
    """
    require_columns(curve, ["model", "direction", "fraction_pruned", *_MEASURES], "compactness")
    require_columns(effects, ["model", "condition", *_MEASURES], "effects")
    colours = model_colours(list(dict.fromkeys(curve["model"])))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, (column, label) in zip(axes, _MEASURES.items(), strict=True):
        for (model, direction), rows in curve.groupby(["model", "direction"], sort=False):
            rows = rows[rows["fraction_pruned"] > 0].sort_values("fraction_pruned")
            ax.plot(
                rows["fraction_pruned"] * 100,
                rows[column],
                _STYLES.get(direction, "-"),
                marker="o",
                color=colours[model],
                label=f"{model}: {direction.split(':')[0]}",
            )
        base = effects[effects["condition"] == UNPRUNED].drop_duplicates("model")
        for _, row in base.iterrows():
            ax.axhline(row[column], color=colours[row["model"]], ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_xlabel("share of block weights pruned (%)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_unity(unity: pd.DataFrame) -> Figure:
    """Mean Jaccard overlap per comparison and model, with the chance level of random sets."""
    require_columns(unity, ["model", "comparison", "jaccard", "chance"], "unity")
    order = ["harm type vs harm type", "random halves", "harm type vs benign"]
    means = unity.groupby(["model", "comparison"])[["jaccard", "chance"]].mean().reset_index()
    models = list(dict.fromkeys(unity["model"]))
    colours = model_colours(models)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        rows = means[means["model"] == model].set_index("comparison").reindex(order)
        x = np.arange(len(order)) + i * width
        ax.bar(x, rows["jaccard"], width, color=colours[model], label=model)
        ax.scatter(x, rows["chance"], color="black", marker="_", s=200, zorder=3)
    ax.set_xticks(np.arange(len(order)) + width * (len(models) - 1) / 2)
    ax.set_xticklabels(order)
    ax.set_ylabel("Jaccard overlap of pruned sets")
    ax.legend(fontsize=8, frameon=False, title="black bar: chance", title_fontsize=8)
    fig.tight_layout()
    return fig
