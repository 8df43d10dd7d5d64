"""Figures for structural indifference.

(paper §2.4; book: Methods › Structural, methods/structural.md)

Inputs are the ``scores`` table of :class:`moralkit.diagnostics.structural.StructuralResult`
and the frame of :func:`moralkit.diagnostics.structural.umap_embedding`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from moralkit.figures.style import legend_below, model_colours, require_columns
from moralkit.foundations import DIMENSIONS

#: Line style per scoring: the paper's non-noise scores solid, the additions broken.
SCORING_STYLES: dict[str, tuple[str, str]] = {
    "non_noise": ("-", "non-noise points (paper)"),
    "noise_as_cluster": (":", "noise as its own cluster"),
    "permuted": ("--", "permuted labels (chance)"),
}


def plot_structure_by_depth(table: pd.DataFrame, metric: str = "ARI") -> Figure:
    """Cluster count, noise ratio and ``metric`` vs MFT5 / Polarity3 / MFT15 over relative depth.

    One panel per quantity, one colour per model. In the three score panels the solid line is
    the paper's non-noise scoring, dotted counts noise as a cluster, dashed is the same score
    against permuted labels (the chance level). Score axes always show at least -0.02..0.1.
    """
    require_columns(
        table,
        ["model", "relative_depth", "n_clusters", "noise_ratio", "label_set", "scoring", "metric"],
        "structural",
    )
    models = list(dict.fromkeys(table["model"]))
    colours = model_colours(models)
    per_layer = table[["model", "relative_depth", "n_clusters", "noise_ratio"]].drop_duplicates()
    label_sets = ("MFT5", "Polarity3", "MFT15")
    fig, axes = plt.subplots(1, 2 + len(label_sets), figsize=(16, 3.4))
    for ax, column, title in (
        (axes[0], "n_clusters", "number of clusters"),
        (axes[1], "noise_ratio", "noise ratio"),
    ):
        for model in models:
            g = per_layer[per_layer["model"] == model].sort_values("relative_depth")
            ax.plot(g["relative_depth"], g[column], color=colours[model], marker=".", lw=1.5)
        ax.set_title(title)
    axes[1].set_ylim(-0.02, 1.02)
    scores = table[table["metric"] == metric]
    for ax, label_set in zip(axes[2:], label_sets, strict=True):
        rows = scores[scores["label_set"] == label_set]
        for model in models:
            for scoring, (style, _) in SCORING_STYLES.items():
                g = rows[(rows["model"] == model) & (rows["scoring"] == scoring)]
                g = g.sort_values("relative_depth")
                ax.plot(g["relative_depth"], g["value"], color=colours[model], ls=style, lw=1.3)
        ax.axhline(0, color="0.4", lw=0.6)
        # Keep at least [-0.02, 0.1] in view so chance-level wiggles do not look like structure.
        low, high = rows["value"].min(), rows["value"].max()
        ax.set_ylim(min(-0.02, low - 0.01), max(0.1, high + 0.02))
        ax.set_title(f"{metric} vs {label_set}")
    for ax in axes:
        ax.set_xlabel("relative depth")
    handles = [Line2D([], [], color=colours[m], lw=2) for m in models]
    labels = list(models)
    handles += [Line2D([], [], color="0.3", ls=s) for s, _ in SCORING_STYLES.values()]
    labels += [label for _, label in SCORING_STYLES.values()]
    fig.tight_layout()
    legend_below(fig, handles, labels, fontsize=10)
    return fig


def plot_umap(embedding: pd.DataFrame, title: str | None = None) -> Figure:
    """UMAP map of one layer, coloured by moral category (left) and HDBSCAN cluster (right).

    Grey points on the left are neutral records; on the right, HDBSCAN noise.
    """
    require_columns(embedding, ["x", "y", "category", "cluster"], "embedding")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5.2))
    palette = dict(zip(DIMENSIONS, sns.color_palette("tab10", len(DIMENSIONS)), strict=True))
    neutral = embedding[embedding["category"] == "neutral"]
    left.scatter(neutral["x"], neutral["y"], s=4, color="0.75", label="neutral", lw=0)
    for category in DIMENSIONS:
        g = embedding[embedding["category"] == category]
        if len(g):
            left.scatter(g["x"], g["y"], s=5, color=palette[category], label=category, lw=0)
    left.legend(markerscale=3, fontsize=7, loc="best", ncol=2, frameon=False)
    left.set_title("coloured by moral category")
    noise = embedding[embedding["cluster"] < 0]
    right.scatter(noise["x"], noise["y"], s=4, color="0.8", lw=0, label="noise")
    clusters = sorted(c for c in embedding["cluster"].unique() if c >= 0)
    cluster_colours = sns.color_palette("husl", max(len(clusters), 1))
    for colour, cluster in zip(cluster_colours, clusters, strict=False):
        g = embedding[embedding["cluster"] == cluster]
        right.scatter(g["x"], g["y"], s=5, color=colour, lw=0)
    right.set_title(f"coloured by HDBSCAN cluster ({len(clusters)} clusters; grey = noise)")
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
