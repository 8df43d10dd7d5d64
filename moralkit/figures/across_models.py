"""Figures comparing diagnostics across models and conditions (paper §3.2; book: Methods ›
Across models, methods/across-models.md).

Inputs are the curves/headline tables of :mod:`moralkit.diagnostics.across_models`. Panels are
titled for readers (:data:`METRIC_TITLES`), never with raw column names.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from moralkit.figures.style import model_colours

#: Reader titles of the headline metrics (metric names of the results' ``headline()``).
METRIC_TITLES: dict[str, str] = {
    "mean_offdiag_cosine": "Mean cosine between all category centres",
    "virtue_vice_cosine": "Virtue–vice centre cosine",
    "spearman_paper": "Typicality gradient ρ (paper variant)",
    "spearman_heldout": "Typicality gradient ρ (held-out prototypes)",
    "ari_mft15": "Cluster agreement with MFT15 (ARI)",
    "noise_ratio": "Share of HDBSCAN noise points",
    "r2_paper": "Probe R² (paper's probe)",
    "r2_ridge_cv": "Probe R² (cross-validated ridge)",
}
#: Reader names of the conditions of :mod:`moralkit.diagnostics.conditions`.
CONDITION_TITLES: dict[str, str] = {
    "trained": "trained",
    "untrained_twin": "untrained twin",
    "safety_prompt": "safety prompt",
}


def metric_title(metric: str) -> str:
    """The reader title of a metric (the name itself, de-underscored, when unknown)."""
    return METRIC_TITLES.get(metric, metric.replace("_", " "))


def _series_labels(curves: pd.DataFrame) -> pd.Series:
    """One legend label per line: the model, plus its condition when several are shown."""
    if "condition" not in curves.columns or curves["condition"].nunique() <= 1:
        return curves["model"].astype(str)
    names = curves["condition"].map(lambda c: CONDITION_TITLES.get(c, c))
    return curves["model"].astype(str) + " · " + names


def plot_headline_curves(curves: pd.DataFrame, metrics: list[str] | None = None) -> Figure:
    """Each metric's curve over relative depth, one panel per metric, one line per model and
    condition (the ``condition`` column, when several conditions are present)."""
    metrics = metrics or list(dict.fromkeys(curves["metric"]))
    curves = curves.assign(_series=_series_labels(curves))
    colours = model_colours(list(dict.fromkeys(curves["_series"])))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = curves[curves["metric"] == metric]
        for series, g in rows.groupby("_series", sort=False):
            g = g.sort_values("relative_depth")
            ax.plot(g["relative_depth"], g["value"], color=colours[series], label=series, lw=1.4)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_title(metric_title(metric), fontsize=9)
        ax.set_xlabel("relative depth")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=min(len(labels), 3), frameon=False, fontsize=8
    )
    fig.tight_layout(rect=(0, 0.06 * (1 + (len(labels) - 1) // 3), 1, 1))
    return fig


def plot_scaling(
    headlines: pd.DataFrame, params_b: Mapping[str, float] | pd.DataFrame, metric: str
) -> Figure:
    """Headline value vs log parameter count for one metric, models labelled.

    ``params_b`` maps model -> billions of parameters, or is the groups table of
    :func:`moralkit.diagnostics.across_models.model_groups` (columns model, params_b).
    """
    if isinstance(params_b, pd.DataFrame):
        params_b = dict(zip(params_b["model"], params_b["params_b"], strict=True))
    rows = headlines[(headlines["metric"] == metric) & headlines["model"].isin(list(params_b))]
    if rows.empty:
        raise ValueError(f"no headlines for metric {metric!r} with known parameter counts")
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    x = rows["model"].map(params_b).astype(float)
    ax.scatter(x, rows["value"], color=sns.color_palette("colorblind")[0])
    for xi, yi, name in zip(x, rows["value"], rows["model"], strict=True):
        ax.annotate(name, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("parameters (billions, log scale)")
    ax.set_ylabel(metric_title(metric))
    fig.tight_layout()
    return fig


def plot_paired_differences(pairs: pd.DataFrame, value_label: str = "value") -> Figure:
    """Paired comparisons: each pair drawn as a line from condition b to condition a, one
    panel per metric. ``pairs`` has columns metric, value_a, value_b and a pair label in
    ``family`` (or ``unit``), and optionally ``contrast``."""
    label_col = "family" if "family" in pairs.columns else "unit"
    metrics = list(dict.fromkeys(pairs["metric"]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = pairs[pairs["metric"] == metric]
        contrasts = list(dict.fromkeys(rows.get("contrast", pd.Series(["a − b"] * len(rows)))))
        for k, contrast in enumerate(contrasts):
            g = rows[rows["contrast"] == contrast] if "contrast" in rows else rows
            for _, r in g.iterrows():
                colour = "tab:red" if r["value_a"] > r["value_b"] else "tab:blue"
                ax.plot(
                    [2 * k, 2 * k + 1],
                    [r["value_b"], r["value_a"]],
                    "-o",
                    color=colour,
                    ms=3,
                    lw=1,
                    alpha=0.8,
                )
                ax.annotate(
                    str(r[label_col]),
                    (2 * k + 1, r["value_a"]),
                    fontsize=6,
                    xytext=(3, 0),
                    textcoords="offset points",
                )
        ticks = np.arange(2 * len(contrasts))
        names = [part for c in contrasts for part in reversed(c.split(" − "))]
        ax.set_xticks(ticks, names, rotation=20, fontsize=8)
        ax.set_xlim(-0.5, ticks[-1] + 0.9)
        ax.set_title(metric_title(metric), fontsize=9)
        ax.set_ylabel(value_label)
    fig.tight_layout()
    return fig


def plot_condition_differences(comparisons: pd.DataFrame) -> Figure:
    """Mean difference (a − b) between two conditions per metric, with its bootstrap 95%
    interval and sign-flip p-value; one row per comparison x metric.

    ``comparisons`` is the ``condition_tests`` table of
    :func:`moralkit.diagnostics.across_models.compare_models`.
    """
    needed = ["comparison", "metric", "mean_difference", "ci_low", "ci_high", "p_value"]
    missing = [c for c in needed if c not in comparisons.columns]
    if missing:
        raise ValueError(f"comparison table lacks columns {missing}")
    rows = comparisons.reset_index(drop=True)
    names = list(dict.fromkeys(rows["comparison"]))
    colours = model_colours(names)
    fig, ax = plt.subplots(figsize=(7.0, 0.35 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for yi, (_, r) in zip(y, rows.iterrows(), strict=True):
        err = [
            [max(r["mean_difference"] - r["ci_low"], 0)],
            [max(r["ci_high"] - r["mean_difference"], 0)],
        ]
        ax.errorbar(
            r["mean_difference"],
            yi,
            xerr=err,
            fmt="o",
            color=colours[r["comparison"]],
            capsize=2,
            ms=4,
        )
        ax.annotate(
            f"p={r['p_value']:.2g}",
            (r["ci_high"], yi),
            xytext=(4, -3),
            textcoords="offset points",
            fontsize=7,
        )
    labels = [f"{r.comparison}: {metric_title(r.metric)}" for r in rows.itertuples()]
    ax.set_yticks(y, labels, fontsize=8)
    ax.axvline(0, color="0.3", lw=0.6)
    ax.set_xlabel("mean difference over layers (a − b)")
    fig.tight_layout()
    return fig
