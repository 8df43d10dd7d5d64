"""Figures for categorical indifference.

(paper §2.2; book: Methods › Categorical, methods/categorical.md)

Inputs are the tables of :class:`moralkit.diagnostics.categorical.CategoricalResult`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from moralkit.figures.style import legend_below, model_colours, require_columns
from moralkit.foundations import DIMENSIONS, FOUNDATIONS


def plot_virtue_vice_by_depth(virtue_vice: pd.DataFrame) -> Figure:
    """Virtue–vice centre cosine vs relative depth, one panel per foundation.

    Lines are models; the shaded band around each line is its bootstrap 95% interval and the
    grey band the permutation null (2.5–97.5%) of label-shuffled categories. Cosine -1 would
    be perfectly opposed categories.
    """
    require_columns(
        virtue_vice,
        ["model", "foundation", "relative_depth", "cosine", "ci_low", "ci_high", "null_low"],
        "virtue_vice",
    )
    models = list(dict.fromkeys(virtue_vice["model"]))
    colours = model_colours(models)
    fig, axes = plt.subplots(
        1, len(FOUNDATIONS), figsize=(3.0 * len(FOUNDATIONS), 3.2), sharex=True, sharey=True
    )
    for ax, foundation in zip(axes, FOUNDATIONS, strict=True):
        rows = virtue_vice[virtue_vice["foundation"] == foundation]
        for model in models:
            g = rows[rows["model"] == model].sort_values("relative_depth")
            if g.empty:
                continue
            x = g["relative_depth"]
            ax.fill_between(x, g["null_low"], g["null_high"], color="0.6", alpha=0.25, lw=0)
            ax.fill_between(x, g["ci_low"], g["ci_high"], color=colours[model], alpha=0.3, lw=0)
            ax.plot(x, g["cosine"], color=colours[model], lw=1.5, label=model)
        if rows["cosine"].isna().all():
            # A pole without prototypes has no centre (MoralStrength: no typical "cheating").
            ax.text(
                0.5,
                0.5,
                "no centre:\na pole has\nno prototypes",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_title(rows["pair"].iloc[0] if "pair" in rows and len(rows) else foundation)
        ax.set_xlabel("relative depth")
        ax.set_ylim(-1.05, 1.05)
    axes[0].set_ylabel("cosine(virtue centre, vice centre)")
    by_label = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            by_label.setdefault(label, handle)
    handles, labels = list(by_label.values()), list(by_label)
    handles.append(plt.Rectangle((0, 0), 1, 1, color="0.6", alpha=0.25))
    labels.append("permutation null 95%")
    fig.tight_layout()
    legend_below(fig, handles, labels, fontsize=10)
    return fig


def plot_centre_heatmap(
    centre_cosines: pd.DataFrame, layer: int, model: str | None = None
) -> Figure:
    """The 10x10 category-centre cosine matrix at one layer (e.g. the optimal layer)."""
    require_columns(
        centre_cosines, ["model", "layer", "category_a", "category_b", "cosine"], "centre"
    )
    rows = centre_cosines[centre_cosines["layer"] == layer]
    if model is not None:
        rows = rows[rows["model"] == model]
    if rows.empty:
        raise ValueError(f"no centre cosines for layer {layer} (model {model})")
    model = rows["model"].iloc[0]
    rows = rows[rows["model"] == model]
    matrix = rows.pivot(index="category_a", columns="category_b", values="cosine").loc[
        list(DIMENSIONS), list(DIMENSIONS)
    ]
    fig, ax = plt.subplots(figsize=(6.2, 5.2))
    mask = np.eye(len(DIMENSIONS), dtype=bool)
    sns.heatmap(
        matrix,
        mask=mask,
        vmin=-1,
        vmax=1,
        cmap="RdBu_r",
        annot=True,
        fmt=".2f",
        annot_kws={"size": 7},
        square=True,
        cbar_kws={"label": "cosine"},
        ax=ax,
    )
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title(f"{model}: category-centre cosines, layer {layer}")
    fig.tight_layout()
    return fig


def plot_optimal_layer_bars(at_optimal: pd.DataFrame) -> Figure:
    """Per-foundation virtue–vice cosine at each model's optimal layer, models side by side.

    Error bars are bootstrap 95% intervals; grey boxes the permutation null band.
    """
    require_columns(
        at_optimal, ["model", "foundation", "cosine", "ci_low", "ci_high", "null_low"], "bars"
    )
    models = list(dict.fromkeys(at_optimal["model"]))
    colours = sns.color_palette("colorblind", len(models))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(
        figsize=(max(6.0, 1.4 * len(FOUNDATIONS) * max(1, len(models) / 2)), 3.6)
    )
    for m, model in enumerate(models):
        g = at_optimal[at_optimal["model"] == model].set_index("foundation").reindex(FOUNDATIONS)
        x = np.arange(len(FOUNDATIONS)) + (m - (len(models) - 1) / 2) * width
        err = np.vstack([g["cosine"] - g["ci_low"], g["ci_high"] - g["cosine"]]).clip(min=0)
        label = model
        if "layer" in g:
            label = (
                f"{model} (layer {int(g['layer'].dropna().iloc[0])})"
                if g["layer"].notna().any()
                else model
            )
        ax.bar(x, g["cosine"], width, yerr=err, color=colours[m], label=label, capsize=2)
        ax.bar(
            x,
            g["null_high"] - g["null_low"],
            width,
            bottom=g["null_low"],
            color="none",
            edgecolor="0.4",
            hatch="///",
            lw=0.5,
        )
    ax.axhline(0, color="0.3", lw=0.6)
    ax.set_xticks(np.arange(len(FOUNDATIONS)), FOUNDATIONS)
    ax.set_ylabel("virtue–vice cosine at optimal layer")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    fig.tight_layout()
    return fig
