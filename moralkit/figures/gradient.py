"""Figures for gradient indifference (paper §2.3; book: Methods › Gradient, methods/gradient.md).

Inputs are the tables of :class:`moralkit.diagnostics.gradient.GradientResult`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from moralkit.figures.style import model_colours
from moralkit.foundations import DIMENSIONS

VARIANT_STYLES = {"paper": "-", "heldout": "--"}


def plot_gradient_by_depth(by_layer: pd.DataFrame, category: str = "overall") -> Figure:
    """Spearman rho (typicality vs cosine to own centre) over relative depth.

    Colour = model, line style = variant (solid: the paper's circular variant, dashed: held-out
    prototypes); bands are bootstrap 95% intervals over records.
    """
    missing = [
        c
        for c in ("model", "variant", "category", "relative_depth", "spearman")
        if c not in by_layer.columns
    ]
    if missing:
        raise ValueError(f"gradient table lacks columns {missing}")
    rows = by_layer[by_layer["category"] == category]
    models = list(dict.fromkeys(rows["model"]))
    colours = model_colours(models)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for (model, variant), g in rows.groupby(["model", "variant"], sort=False):
        g = g.sort_values("relative_depth")
        ax.fill_between(
            g["relative_depth"], g["ci_low"], g["ci_high"], color=colours[model], alpha=0.2, lw=0
        )
        ax.plot(
            g["relative_depth"],
            g["spearman"],
            VARIANT_STYLES.get(variant, ":"),
            color=colours[model],
            label=f"{model} · {variant}",
        )
    ax.axhline(0, color="0.3", lw=0.6)
    ax.set_xlabel("relative depth")
    ax.set_ylabel("Spearman ρ (typicality, cosine to centre)")
    ax.set_title(f"Typicality gradient: {category}")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_category_peaks(peaks: pd.DataFrame, variant: str = "paper") -> Figure:
    """Peak-over-layers Spearman rho per category (10 categories x models), as in the paper's
    cross-model bar chart; error bars are bootstrap 95% intervals at the peak layer."""
    rows = peaks[(peaks["variant"] == variant) & (peaks["category"].isin(DIMENSIONS))]
    if rows.empty:
        raise ValueError(f"no per-category peaks for variant {variant!r}")
    models = list(dict.fromkeys(rows["model"]))
    colours = sns.color_palette("colorblind", len(models))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.9 * len(DIMENSIONS) * max(1, len(models) / 2)), 3.6))
    for m, model in enumerate(models):
        g = rows[rows["model"] == model].set_index("category").reindex(DIMENSIONS)
        x = np.arange(len(DIMENSIONS)) + (m - (len(models) - 1) / 2) * width
        err = np.vstack([g["spearman"] - g["ci_low"], g["ci_high"] - g["spearman"]])
        ax.bar(
            x,
            g["spearman"],
            width,
            yerr=np.nan_to_num(err.clip(min=0)),
            color=colours[m],
            label=model,
            capsize=2,
        )
    ax.set_xticks(np.arange(len(DIMENSIONS)), DIMENSIONS, rotation=30)
    ax.set_ylim(min(0.0, float(rows["ci_low"].min(skipna=True)) - 0.05), 1.0)
    ax.set_ylabel(f"peak Spearman ρ ({variant})")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig
