"""Figures for the behavioural measures under steering (paper §4.5, §5; book: Methods ›
Evaluation, methods/evaluation.md).

Inputs are the tables of :class:`moralkit.evaluation.behaviour.BehaviourResult` and of the
judge results (:mod:`moralkit.evaluation.judge`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from moralkit.figures.style import require_columns

BENCHMARK_TITLES = {
    "moral-stories": "Moral Stories: prefers the moral action",
    "ethics": "ETHICS commonsense: zero-shot accuracy",
    "ethics-hard": "ETHICS commonsense (hard): zero-shot accuracy",
}
STAGE_NAMES = {
    "pretrained": "pretrained SAE (control)",
    "finetuned": "fine-tuned SAE",
    "delta": "error-preserving (ft − pre)",
}
_OFFSET = (len(STAGE_NAMES) - 1) / 2


def _arm_positions(summary: pd.DataFrame) -> list[tuple[str, float]]:
    steered = summary[summary["stage"] != "none"]
    return sorted({(int(r.layer), float(r.strength)) for r in steered.itertuples()})


def plot_behaviour(summary: pd.DataFrame, fluency: pd.DataFrame) -> Figure:
    """One panel per benchmark (rate ± 95% interval per steered arm, the unsteered rate as a
    grey band) and a last panel with perplexity on neutral text relative to the unsteered model.
    """
    require_columns(
        summary,
        ["benchmark", "stage", "layer", "strength", "value", "ci_low", "ci_high"],
        "behaviour summary",
    )
    require_columns(fluency, ["stage", "layer", "strength", "ratio_to_unsteered"], "fluency")
    benchmarks = list(dict.fromkeys(summary["benchmark"]))
    positions = _arm_positions(summary)
    labels = [f"layer {layer}\ns={s:g}" for layer, s in positions]
    colours = dict(zip(STAGE_NAMES, sns.color_palette("colorblind", len(STAGE_NAMES)), strict=True))
    fig, axes = plt.subplots(1, len(benchmarks) + 1, figsize=(3.6 * (len(benchmarks) + 1), 3.6))
    for ax, bench in zip(axes, benchmarks, strict=False):
        part = summary[summary["benchmark"] == bench]
        base = part[part["stage"] == "none"].iloc[0]
        ax.axhspan(base["ci_low"], base["ci_high"], color="0.85", label="no steering (95% CI)")
        ax.axhline(base["value"], color="0.4", lw=1)
        for k, (stage, name) in enumerate(STAGE_NAMES.items()):
            rows = part[part["stage"] == stage]
            x = [
                positions.index((int(r.layer), float(r.strength))) + (k - _OFFSET) * 0.2
                for r in rows.itertuples()
            ]
            err = [rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]]
            ax.errorbar(
                x, rows["value"], yerr=err, fmt="o", color=colours[stage], label=name, capsize=3
            )
        ax.axhline(0.5, color="0.6", ls=":", lw=1)
        ax.set_title(BENCHMARK_TITLES.get(bench, bench), fontsize=9)
        ax.set_xticks(range(len(positions)), labels, fontsize=8)
        ax.set_xlim(-0.5, len(positions) - 0.5)
        ax.set_ylim(0, 1)
        ax.set_ylabel("rate")
    ax = axes[-1]
    for k, (stage, name) in enumerate(STAGE_NAMES.items()):
        rows = fluency[fluency["stage"] == stage]
        x = [
            positions.index((int(r.layer), float(r.strength))) + (k - _OFFSET) * 0.2
            for r in rows.itertuples()
        ]
        ax.scatter(x, rows["ratio_to_unsteered"], color=colours[stage], label=name)
    ax.axhline(1.0, color="0.4", lw=1)
    ax.set_xlim(-0.5, len(positions) - 0.5)
    ax.set_yscale("log")
    ax.set_title("Fluency: perplexity vs. no steering", fontsize=9)
    ax.set_xticks(range(len(positions)), labels, fontsize=8)
    ax.set_ylabel("perplexity ratio (log scale)")
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    return fig


def plot_win_rates(summary: pd.DataFrame) -> Figure:
    """Stacked shares of win / tie / loss / failure per steered arm (pairwise judging)."""
    require_columns(summary, ["arm", "n_win", "n_tie", "n_loss", "n_failure"], "pairwise summary")
    counts = summary.set_index("arm")[["n_win", "n_tie", "n_loss", "n_failure"]]
    counts.columns = ["win", "tie", "loss", "failure"]
    shares = counts.div(counts.sum(axis=1), axis=0)
    fig, ax = plt.subplots(figsize=(6.0, 0.6 + 0.5 * len(shares)))
    shares.plot.barh(stacked=True, ax=ax, color=sns.color_palette("colorblind", 4), width=0.6)
    ax.set_xlabel("share of judged pairs")
    ax.set_ylabel("")
    ax.set_xlim(0, 1)
    ax.legend(ncol=4, fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig
