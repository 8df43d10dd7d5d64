"""Figures for the ground-truth chapter (paper §1; book: Methods › Data, methods/data.md).

Inputs are the tidy tables of :mod:`moralkit.data.summaries`; each function returns a
matplotlib Figure and does no analysis.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from moralkit.figures.style import require_columns
from moralkit.foundations import FOUNDATIONS, TYPICALITY_STRATA

POLE_COLOURS = {"virtue": "#1f77b4", "vice": "#d62728", "neutral": "#8c8c8c"}
STRATUM_COLOURS = {
    "virtue_typical": "#08519c",
    "virtue": "#6baed6",
    "neutral": "#bdbdbd",
    "vice": "#fc9272",
    "vice_typical": "#a50f15",
}


def _stratum_label(value: float) -> str:
    return f"{value:g}"


def plot_stratum_counts(counts: pd.DataFrame) -> Figure:
    """Records per typicality stratum: one row of panels per source, one panel per foundation.

    Blue bars: virtue records, red: vice, at each typicality stratum (1.0 = prototypes); the
    grey bar on the right counts neutral records. Each row has its own y scale.
    """
    require_columns(counts, ["source", "foundation", "pole", "typicality", "records"], "counts")
    sources = list(dict.fromkeys(counts["source"]))
    fig, axes = plt.subplots(
        len(sources),
        len(FOUNDATIONS),
        figsize=(2.9 * len(FOUNDATIONS), 2.4 * len(sources)),
        sharey="row",
        squeeze=False,
    )
    x = np.arange(len(TYPICALITY_STRATA))
    width = 0.4
    for r, source in enumerate(sources):
        rows = counts[counts["source"] == source]
        for c, foundation in enumerate(FOUNDATIONS):
            ax = axes[r, c]
            cell = rows[rows["foundation"] == foundation]
            for offset, pole in ((-width / 2, "virtue"), (width / 2, "vice")):
                polar = cell[cell["pole"] == pole].set_index("typicality")["records"]
                heights = [polar.get(t, 0) for t in TYPICALITY_STRATA]
                ax.bar(x + offset, heights, width, color=POLE_COLOURS[pole], label=pole)
            neutral = int(cell.loc[cell["pole"] == "neutral", "records"].sum())
            ax.bar(len(TYPICALITY_STRATA) + 0.3, neutral, 0.6, color=POLE_COLOURS["neutral"])
            ax.set_xticks(
                [*x, len(TYPICALITY_STRATA) + 0.3],
                [*map(_stratum_label, TYPICALITY_STRATA), "neutral"],
                rotation=60,
                fontsize=7,
            )
            if r == 0:
                ax.set_title(foundation)
            if c == 0:
                ax.set_ylabel(f"{source}\nrecords", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=POLE_COLOURS[p]) for p in POLE_COLOURS]
    fig.legend(handles, list(POLE_COLOURS), loc="lower center", ncol=3, frameon=False)
    fig.supxlabel("typicality stratum", y=0.06, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def plot_typicality_shares(shares: pd.DataFrame) -> Figure:
    """Share of each typicality stratum within a pole, one line per source.

    Left: virtue records, right: vice records. Sources of very different sizes (the paper's
    201k train records, a 2.8k-word lexicon) become comparable as distributions.
    """
    require_columns(shares, ["source", "pole", "typicality", "share"], "shares")
    sources = list(dict.fromkeys(shares["source"]))
    markers = ["o", "s", "^", "D", "v"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    x = np.arange(len(TYPICALITY_STRATA))
    for ax, pole in zip(axes, ("virtue", "vice"), strict=True):
        for i, source in enumerate(sources):
            rows = shares[(shares["source"] == source) & (shares["pole"] == pole)]
            by_t = rows.set_index("typicality")["share"]
            if by_t.sum() == 0:
                continue  # a source without this pole (e.g. the Social-Chem subset's vice)
            ax.plot(
                x,
                [by_t.get(t, 0.0) for t in TYPICALITY_STRATA],
                marker=markers[i % len(markers)],
                label=source,
            )
        ax.set_xticks(x, [_stratum_label(t) for t in TYPICALITY_STRATA])
        ax.set_xlabel("typicality stratum (1.0 = prototype)")
        ax.set_title(f"{pole} records")
    axes[0].set_ylabel("share of the pole's records")
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_subset_composition(composition: pd.DataFrame) -> Figure:
    """Stratified-subset records per foundation, stacked by stratum; one panel per source."""
    require_columns(composition, ["source", "foundation", "stratum", "records"], "composition")
    sources = list(dict.fromkeys(composition["source"]))
    fig, axes = plt.subplots(
        1, len(sources), figsize=(4.6 * len(sources), 3.0), squeeze=False, sharey=True
    )
    y = np.arange(len(FOUNDATIONS))
    for ax, source in zip(axes[0], sources, strict=True):
        rows = composition[composition["source"] == source]
        left = np.zeros(len(FOUNDATIONS))
        for stratum, colour in STRATUM_COLOURS.items():
            part = rows[rows["stratum"] == stratum].set_index("foundation")["records"]
            widths = np.array([part.get(f, 0) for f in FOUNDATIONS], dtype=float)
            ax.barh(y, widths, left=left, color=colour, label=stratum)
            left += widths
        for yi, total in zip(y, left, strict=True):
            ax.text(total, yi, f" {int(total)}", va="center", fontsize=8)
        ax.set_yticks(y, FOUNDATIONS)
        ax.set_xlabel("records in the subset")
        ax.set_title(f"{source} (n = {int(rows['records'].sum())})")
        ax.set_xlim(0, max(left.max() * 1.18, 1))
    axes[0, 0].invert_yaxis()  # shared y axis: invert once, paper order top to bottom
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig
