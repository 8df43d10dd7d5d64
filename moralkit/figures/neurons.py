"""Figures for value neurons (paper §7(a); book: Methods › Value neurons, methods/value-neurons.md).

Inputs are the tables of :mod:`moralkit.neurons.results`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from moralkit.data.valuebench import SCHWARTZ_DIMENSIONS
from moralkit.figures.style import require_columns
from moralkit.neurons.pvq import OPTION_LABELS, OPTIONS

MODE_LABELS = {
    "value": "edit the value's neurons",
    "reverse": "reverse (edit the opposite's)",
    "random": "random neurons (control)",
}
ROLE_STYLES = {"target": "-", "opposite": "--"}


def _dimension_colours() -> dict[str, tuple[float, float, float]]:
    palette = sns.color_palette("colorblind", len(SCHWARTZ_DIMENSIONS))
    return dict(zip(SCHWARTZ_DIMENSIONS, palette, strict=True))


def _axes(n_rows: int, n_cols: int, width: float, height: float, **kw):
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False, **kw
    )
    return fig, axes


def plot_neuron_map(per_layer: pd.DataFrame) -> Figure:
    """Value neurons per layer (share of the layer's gate neurons), one panel per model."""
    require_columns(per_layer, ["model", "dimension", "relative_depth", "fraction_of_layer"], "map")
    models = list(dict.fromkeys(per_layer["model"]))
    colours = _dimension_colours()
    fig, axes = _axes(1, len(models), 4.6, 3.4, sharey=True)
    for ax, model in zip(axes[0], models, strict=True):
        rows = per_layer[per_layer["model"] == model]
        for dimension, group in rows.groupby("dimension", sort=False):
            ax.plot(
                group["relative_depth"],
                100 * group["fraction_of_layer"],
                marker="o",
                ms=3,
                color=colours.get(dimension),
                label=dimension,
            )
        ax.set_title(model)
        ax.set_xlabel("relative depth")
    axes[0][0].set_ylabel("value neurons (% of the layer's neurons)")
    axes[0][-1].legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_dimension_overlap(overlap: pd.DataFrame) -> Figure:
    """Shared neurons between value dimensions, relative to layer-matched random sets."""
    require_columns(overlap, ["model", "dimension_a", "dimension_b", "ratio_layer_matched"], "ov")
    table = overlap.assign(pair=overlap["dimension_a"] + " ∩ " + overlap["dimension_b"])
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    sns.barplot(table, y="pair", x="ratio_layer_matched", hue="model", ax=ax, palette="colorblind")
    ax.axvline(1.0, color="0.3", lw=0.8, ls=":")
    ax.set_xlabel("shared neurons / expected for random sets (matched per layer)")
    ax.set_ylabel("")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_gamma_sweep(sweep: pd.DataFrame) -> Figure:
    """Shift of the expected PVQ rating vs γ: rows = models, columns = target values.

    Colour = edit mode; solid = the target value's items, dashed = the opposite value's items;
    bands = t-intervals over items.
    """
    require_columns(sweep, ["model", "target", "mode", "gamma", "role", "mean_shift"], "sweep")
    models = list(dict.fromkeys(sweep["model"]))
    targets = list(dict.fromkeys(sweep["target"]))
    colours = dict(zip(MODE_LABELS, sns.color_palette("colorblind", 3), strict=True))
    fig, axes = _axes(len(models), len(targets), 3.4, 2.9, sharex=True, sharey=True)
    for r, model in enumerate(models):
        for c, target in enumerate(targets):
            ax = axes[r][c]
            rows = sweep[(sweep["model"] == model) & (sweep["target"] == target)]
            for (mode, role), g in rows.groupby(["mode", "role"], sort=False):
                g = g.sort_values("gamma")
                colour = colours.get(mode)
                ax.fill_between(g["gamma"], g["ci_low"], g["ci_high"], color=colour, alpha=0.12)
                ax.plot(g["gamma"], g["mean_shift"], ROLE_STYLES[role], color=colour, marker=".")
            ax.axhline(0, color="0.3", lw=0.6)
            ax.set_title(f"{model}\nedit: {target}", fontsize=9)
            if r == len(models) - 1:
                ax.set_xlabel("γ")
        axes[r][0].set_ylabel("rating shift (1–6 scale)")
    present = [m for m in colours if m in set(sweep["mode"])]
    handles = [plt.Line2D([], [], color=colours[m], label=MODE_LABELS[m]) for m in present]
    handles += [
        plt.Line2D([], [], color="0.3", ls="-", label="items of the edited value"),
        plt.Line2D([], [], color="0.3", ls="--", label="items of its opposite"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_answer_distribution(sweep: pd.DataFrame, mode: str = "value") -> Figure:
    """Mean probability of each Likert option vs γ, target items, one panel per (model, target)."""
    rows = sweep[(sweep["mode"] == mode) & (sweep["role"] == "target")]
    if rows.empty:
        raise ValueError(f"no sweep rows for mode {mode!r}")
    panels = list(dict.fromkeys(zip(rows["model"], rows["target"], strict=True)))
    n_cols = min(4, len(panels))
    n_rows = int(np.ceil(len(panels) / n_cols))
    fig, axes = _axes(n_rows, n_cols, 3.2, 2.8, sharey=True)
    colours = sns.color_palette("RdYlGn", len(OPTIONS))
    for ax, (model, target) in zip(axes.ravel(), panels, strict=False):
        g = rows[(rows["model"] == model) & (rows["target"] == target)].sort_values("gamma")
        bottom = np.zeros(len(g))
        labels = [f"{x:g}" for x in g["gamma"]]
        for k, option in enumerate(OPTIONS):
            values = g[f"p_{option}"].to_numpy()
            ax.bar(labels, values, bottom=bottom, color=colours[k], label=OPTION_LABELS[k])
            bottom += values
        ax.set_title(f"{model}\nedit: {target}", fontsize=9)
        ax.set_xlabel("γ")
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("mean P(option)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_fluency(fluency: pd.DataFrame) -> Figure:
    """Perplexity of neutral text vs γ: one panel per model, colour = mode, one line per target."""
    require_columns(fluency, ["model", "target", "mode", "gamma", "perplexity"], "fluency")
    models = list(dict.fromkeys(fluency["model"]))
    colours = dict(zip(MODE_LABELS, sns.color_palette("colorblind", 3), strict=True))
    fig, axes = _axes(1, len(models), 4.2, 3.2)
    for ax, model in zip(axes[0], models, strict=True):
        rows = fluency[fluency["model"] == model]
        for (mode, _target), g in rows.groupby(["mode", "target"], sort=False):
            g = g.sort_values("gamma")
            ax.plot(g["gamma"], g["perplexity"], color=colours.get(mode), marker=".", alpha=0.8)
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("γ")
    axes[0][0].set_ylabel("perplexity on neutral text")
    modes = list(dict.fromkeys(fluency["mode"]))
    handles = [plt.Line2D([], [], color=colours[m], label=MODE_LABELS[m]) for m in modes]
    axes[0][-1].legend(handles=handles, frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def plot_foundation_overlap(overlap: pd.DataFrame) -> Figure:
    """Heatmap: shared neurons / layer-matched random expectation, foundation pole x value."""
    require_columns(
        overlap, ["model", "foundation", "pole", "dimension", "ratio_layer_matched"], "overlap"
    )
    models = list(dict.fromkeys(overlap["model"]))
    fig, axes = _axes(1, len(models), 4.8, 4.2)
    for ax, model in zip(axes[0], models, strict=True):
        rows = overlap[overlap["model"] == model]
        grid = rows.assign(row=rows["foundation"] + " · " + rows["pole"]).pivot_table(
            index="row", columns="dimension", values="ratio_layer_matched", sort=False
        )
        grid = grid.reindex(columns=[d for d in SCHWARTZ_DIMENSIONS if d in grid.columns])
        sns.heatmap(grid, ax=ax, cmap="vlag", center=1.0, annot=True, fmt=".2f", cbar=False)
        ax.set_title(model)
        ax.set_xlabel("value dimension")
        ax.set_ylabel("foundation · pole")
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def plot_random_control(draws: pd.DataFrame, control: pd.DataFrame) -> Figure:
    """Each random neuron set's separation (dots) and the value edit's (red bar), per model
    (rows) and γ (columns), one strip per edited value; the label gives the value edit's
    percentile among the random sets with its interval over item resamples."""
    require_columns(draws, ["model", "target", "gamma", "mode", "separation"], "draws")
    require_columns(control, ["model", "target", "gamma", "percentile", "ci_low", "ci_high"], "c")
    models = list(dict.fromkeys(draws["model"]))
    gammas = sorted(draws["gamma"].unique())
    targets = list(dict.fromkeys(draws["target"]))
    fig, axes = _axes(len(models), len(gammas), 3.6, 0.7 + 0.55 * len(targets), sharex=True)
    for r, model in enumerate(models):
        for c, gamma in enumerate(gammas):
            ax = axes[r][c]
            here = draws[(draws["model"] == model) & (draws["gamma"] == gamma)]
            for y, target in enumerate(targets):
                rows = here[here["target"] == target]
                random = rows.loc[rows["mode"] == "random", "separation"]
                jitter = np.linspace(-0.15, 0.15, len(random)) if len(random) else []
                ax.scatter(random, y + np.asarray(jitter), s=9, color="0.45", zorder=2)
                edit = rows.loc[rows["mode"] == "value", "separation"]
                ax.scatter(edit, [y] * len(edit), marker="|", s=260, color="#d62728", zorder=3)
                ax.text(
                    1.02,
                    y,
                    _percentile_label(control, model, target, gamma),
                    transform=ax.get_yaxis_transform(),
                    va="center",
                    fontsize=7,
                )
            ax.axvline(0, color="0.3", lw=0.6)
            ax.set_yticks(range(len(targets)), targets if c == 0 else [""] * len(targets))
            ax.set_ylim(-0.6, len(targets) - 0.4)
            ax.set_title(f"{model}, γ = {gamma:g}", fontsize=9)
            if r == len(models) - 1:
                ax.set_xlabel("separation (target − opposite shift)")
    fig.tight_layout(rect=(0, 0, 0.95, 1))
    return fig


def _percentile_label(control: pd.DataFrame, model: str, target: str, gamma: float) -> str:
    row = control[
        (control["model"] == model) & (control["target"] == target) & (control["gamma"] == gamma)
    ]
    if row.empty:
        return ""
    r = row.iloc[0]
    return f"{r['percentile']:.0f}th\n[{r['ci_low']:.0f}, {r['ci_high']:.0f}]"
