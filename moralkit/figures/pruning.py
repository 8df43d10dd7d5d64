"""Figures of chapter 10: the compactness curve, the random-mask controls and the unity overlaps.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from moralkit.figures.style import legend_below, model_colours, require_columns
from moralkit.pruning.results import ORGAD, ORGAD_SCALE, UNPRUNED
from moralkit.pruning.unity import BENIGN, CEILING, HARM, PLAIN

_MEASURES = {
    "compliance_margin": "held-out comply − refuse margin\n(nats per token; lower = safer)",
    "compliance_margin_prefix": 'old "Sure, here is" margin\n(the calibration\'s own prefix)',
    "perplexity": "perplexity on neutral text\n(lower = more fluent)",
}
_STYLES = {ORGAD: "-", "wei: prune safety": "--"}
_CONTROL_LABELS = {
    "asr": "attack success rate",
    "compliance_margin": "held-out margin",
    "perplexity": "perplexity",
    "moral-stories": "Moral Stories preference",
    "ethics": "ETHICS accuracy",
    "ethics-hard": "ETHICS-hard accuracy",
}


def plot_compactness(curve: pd.DataFrame, effects: pd.DataFrame) -> Figure:
    """Both margins and perplexity against the pruned share, per model and direction.

    Solid: Orgad et al.'s direction (prune harmful generation); dashed: Wei et al.'s (prune
    safety). Dotted horizontal lines: the unpruned model; grey vertical line: Orgad et al.'s
    0.0005% of parameters.
    """
    measures = {k: v for k, v in _MEASURES.items() if k in curve.columns}
    require_columns(curve, ["model", "direction", "fraction_pruned", *measures], "compactness")
    require_columns(effects, ["model", "condition", *measures], "effects")
    colours = model_colours(list(dict.fromkeys(curve["model"])))
    fig, axes = plt.subplots(1, len(measures), figsize=(4.6 * len(measures), 3.8))
    for ax, (column, label) in zip(np.atleast_1d(axes), measures.items(), strict=True):
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
        ax.axvline(ORGAD_SCALE * 100, color="0.6", lw=4, alpha=0.35, zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("share of block weights pruned (%)")
        ax.set_ylabel(label)
    fig.tight_layout()
    handles = [Line2D([], [], color=colours[m], marker="o") for m in colours]
    handles += [Line2D([], [], color="0.3", ls=style) for style in _STYLES.values()]
    handles.append(Line2D([], [], color="0.6", lw=4, alpha=0.35))
    labels = [*colours, *(d.split(":")[0] for d in _STYLES), "grey: 0.0005%"]
    legend_below(fig, handles, labels)
    return fig


def plot_random_control(randoms: pd.DataFrame, control: pd.DataFrame) -> Figure:
    """Each random mask's effect (grey dots: measure under the random mask minus unpruned)
    beside the headline mask's (red bar), one row per model and direction, one column per
    measure; the label is the headline mask's percentile among the random masks."""
    require_columns(control, ["model", "direction", "measure", "targeted_effect", "unpruned"], "c")
    measures = [m for m in _CONTROL_LABELS if m in set(control["measure"])]
    panels = list(dict.fromkeys(zip(control["model"], control["direction"], strict=True)))
    fig, axes = plt.subplots(
        len(panels),
        len(measures),
        figsize=(2.3 * len(measures), 1.1 + 0.9 * len(panels)),
        squeeze=False,
    )
    for r, (model, direction) in enumerate(panels):
        drawn = randoms[(randoms["model"] == model) & (randoms["direction"] == direction)]
        rows = control[(control["model"] == model) & (control["direction"] == direction)]
        for c, measure in enumerate(measures):
            ax = axes[r][c]
            row = rows[rows["measure"] == measure]
            if row.empty:
                ax.set_visible(False)
                continue
            row = row.iloc[0]
            effects = drawn[measure].to_numpy(float) - row["unpruned"]
            jitter = np.linspace(-0.2, 0.2, len(effects)) if len(effects) else []
            ax.scatter(effects, jitter, s=10, color="0.45", zorder=2)
            ax.scatter([row["targeted_effect"]], [0], marker="|", s=400, color="#d62728", zorder=3)
            ax.axvline(0, color="0.3", lw=0.6)
            ax.set_yticks([])
            ax.set_ylim(-0.6, 0.6)
            ax.set_title(f"{row['percentile']:.0f}th percentile", fontsize=8)
            if r == len(panels) - 1:
                ax.set_xlabel(f"{_CONTROL_LABELS[measure]}\n(change from unpruned)", fontsize=8)
            ax.tick_params(labelsize=7)
        axes[r][0].set_ylabel(f"{model}\n{direction.split(':')[0]}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_unity(unity: pd.DataFrame, summary: pd.DataFrame) -> Figure:
    """Left: Jaccard overlap per comparison and model (bars: observed sets; whiskers: 95% over
    prompt resamples; black ticks: chance). Right: where the harm-type and the benign overlaps
    lie between chance (0) and the random-group ceiling (1), with their intervals."""
    require_columns(unity, ["model", "comparison", "jaccard", "chance"], "unity")
    require_columns(summary, ["model", "position_harm", "position_benign"], "unity summary")
    order = [c for c in (HARM, CEILING, BENIGN, PLAIN) if c in set(unity["comparison"])]
    models = list(dict.fromkeys(unity["model"]))
    colours = model_colours(models)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), width_ratios=(1.6, 1))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        rows = unity[unity["model"] == model].set_index("comparison").reindex(order)
        x = np.arange(len(order)) + i * width
        left.bar(x, rows["jaccard"], width, color=colours[model], label=model)
        if "ci_low" in rows:
            err = np.vstack([rows["jaccard"] - rows["ci_low"], rows["ci_high"] - rows["jaccard"]])
            left.errorbar(
                x,
                rows["jaccard"],
                yerr=np.clip(np.nan_to_num(err), 0, None),
                fmt="none",
                ecolor="0.2",
                lw=1,
            )
        left.scatter(x, rows["chance"], color="black", marker="_", s=200, zorder=3)
    left.set_xticks(np.arange(len(order)) + width * (len(models) - 1) / 2)
    left.set_xticklabels([c.replace(" (", "\n(").replace(": ", ":\n") for c in order], fontsize=8)
    left.set_ylabel("Jaccard overlap of pruned sets")
    left.legend(fontsize=8, frameon=False, title="black tick: chance", title_fontsize=8)
    for i, model in enumerate(models):
        row = summary[summary["model"] == model].iloc[0]
        for k, name in enumerate(("harm", "benign")):
            value = row[f"position_{name}"]
            low, high = row[f"position_{name}_ci_low"], row[f"position_{name}_ci_high"]
            y = k + (i - (len(models) - 1) / 2) * 0.15
            right.errorbar(
                [value], [y], xerr=[[value - low], [high - value]], fmt="o", color=colours[model]
            )
    right.axvline(0, color="0.3", ls=":", lw=1)
    right.axvline(1, color="0.3", ls="--", lw=1)
    right.set_yticks([0, 1], ["harm type vs\nharm type", "harm type vs\nbenign (same format)"])
    right.set_xlabel("position: 0 = chance, 1 = random-group ceiling")
    fig.tight_layout()
    return fig
