"""Figures for the SAE surgery (paper §4.2-4.4, §5.4; book: Methods › SAE surgery,
methods/sae.md).

Inputs are the tables of :class:`moralkit.sae.surgery.SurgeryResult` and
:class:`moralkit.sae.rediagnose.RediagnosisResult`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from moralkit.figures.style import require_columns
from moralkit.foundations import DIMENSIONS

TERM_LABELS = {
    "reconstruction": "reconstruction",
    "l1": "sparsity (L1)",
    "alignment": "absolute alignment",
    "polarity": "polarity contrast",
    "typicality": "typicality ordering",
    "off_dimension": "off-dimension",
    "total": "weighted total",
}
CONDITION_LABELS = {
    "original": "original activations",
    "pretrained": "pretrained SAE reconstruction",
    "finetuned": "fine-tuned SAE reconstruction",
}
METRIC_LABELS = {
    "virtue_vice_cosine": "virtue–vice centre cosine (lower = better separated)",
    "spearman_heldout": "typicality Spearman ρ, held-out (higher = finer)",
    "ari_mft15": "clustering ARI vs foundations (higher = better)",
    "r2_ridge_cv": "ridge probe R² (higher = more decodable)",
}


def plot_pretraining(history: pd.DataFrame) -> Figure:
    """Per-layer pretraining curves: validation MSE, L0 and λ over epochs."""
    require_columns(history, ("layer", "epoch", "val_mse", "l0", "lambda"), "pretraining history")
    panels = [("val_mse", "validation MSE"), ("l0", "L0 (active features)"), ("lambda", "λ")]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    for ax, (col, title) in zip(axes, panels, strict=True):
        for layer, g in history.groupby("layer"):
            ax.plot(g["epoch"], g[col], marker=".", label=f"layer {layer}")
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_feature_types(layers: pd.DataFrame) -> Figure:
    """Share of monosemantic, polysemantic and weak features per layer."""
    require_columns(layers, ("layer", "mono_ratio", "poly_ratio", "weak_ratio"), "layers")
    shares = layers.set_index("layer")[["mono_ratio", "poly_ratio", "weak_ratio"]]
    shares.columns = ["monosemantic", "polysemantic", "weak"]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    shares.plot.bar(stacked=True, ax=ax, color=sns.color_palette("colorblind", 3), rot=0)
    ax.set_ylabel("share of SAE features")
    ax.set_xlabel("layer")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_top_features_heatmap(features: pd.DataFrame, layer: int, n: int = 25) -> Figure:
    """Pearson r with the ten moral dimensions for the ``n`` features of ``layer`` with the
    largest |r| (validation split)."""
    require_columns(features, ("layer", "feature", "abs_r_max", "type", *DIMENSIONS), "features")
    f = features[features["layer"] == layer].nlargest(n, "abs_r_max")
    matrix = f.set_index("feature")[list(DIMENSIONS)]
    matrix.index = [f"{i} ({t[:4]})" for i, t in zip(f["feature"], f["type"], strict=True)]
    fig, ax = plt.subplots(figsize=(6.5, 0.22 * len(f) + 1.5))
    lim = float(np.nanmax(np.abs(matrix.to_numpy()))) if len(f) else 1.0
    sns.heatmap(
        matrix, cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, ax=ax, cbar_kws={"label": "Pearson r"}
    )
    ax.set_ylabel("feature (type)")
    ax.set_title(f"Layer {layer}: most moral features")
    fig.tight_layout()
    return fig


def plot_finetune_terms(history: pd.DataFrame) -> Figure:
    """Validation value of each objective term over fine-tuning epochs (one line per layer)."""
    terms = [t for t in TERM_LABELS if f"val_{t}" in history.columns]
    require_columns(history, ("layer", "epoch"), "fine-tuning history")
    cols = 4
    rows = int(np.ceil(len(terms) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms, strict=False):
        for layer, g in history.groupby("layer"):
            ax.plot(g["epoch"], g[f"val_{term}"], marker=".", label=f"layer {layer}")
        ax.set_title(TERM_LABELS[term], fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes.flat[len(terms) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_rediagnosis(differences: pd.DataFrame, verdicts_only: bool = True) -> Figure:
    """Primary metric of each diagnostic under the three conditions, per ground truth.

    Bars for the reconstructions carry the paired-bootstrap 95% interval of their difference
    from the original, placed around their value.
    """
    require_columns(
        differences,
        (
            "ground_truth",
            "diagnostic",
            "metric",
            "condition",
            "original",
            "value",
            "ci_low",
            "ci_high",
        ),
        "differences",
    )
    d = differences[differences["metric"].isin(METRIC_LABELS)] if verdicts_only else differences
    metrics = list(dict.fromkeys(d["metric"]))
    gts = list(dict.fromkeys(d["ground_truth"]))
    fig, axes = plt.subplots(
        1, max(len(metrics), 1), figsize=(3.4 * max(len(metrics), 1), 3.4), squeeze=False
    )
    colours = dict(zip(CONDITION_LABELS, sns.color_palette("colorblind", 3), strict=True))
    width = 0.8 / 3
    for ax, metric in zip(axes[0], metrics, strict=True):
        m = d[d["metric"] == metric]
        for k, cond in enumerate(CONDITION_LABELS):
            vals, lo, hi = [], [], []
            for gt in gts:
                rows = m[m["ground_truth"] == gt]
                if cond == "original":
                    vals.append(rows["original"].iloc[0] if len(rows) else np.nan)
                    lo.append(0.0)
                    hi.append(0.0)
                    continue
                r = rows[rows["condition"] == cond]
                v = r["value"].iloc[0] if len(r) else np.nan
                orig = r["original"].iloc[0] if len(r) else np.nan
                vals.append(v)
                lo.append(v - (orig + r["ci_low"].iloc[0]) if len(r) else np.nan)
                hi.append((orig + r["ci_high"].iloc[0]) - v if len(r) else np.nan)
            err = np.abs(np.nan_to_num(np.array([lo, hi]), nan=0.0))
            ax.bar(
                np.arange(len(gts)) + (k - 1) * width,
                vals,
                width,
                yerr=err,
                capsize=3,
                color=colours[cond],
                label=CONDITION_LABELS[cond],
            )
        ax.set_xticks(np.arange(len(gts)), gts, fontsize=8)
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=8, wrap=True)
        ax.axhline(0, color="grey", lw=0.5)
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def plot_top_records(top: pd.DataFrame, layer: int) -> Figure:
    """For a few features of ``layer``: the test records they fire on most, as bars."""
    require_columns(top, ("layer", "feature", "rank", "activation", "text", "category"), "top")
    t = top[top["layer"] == layer]
    feats = list(dict.fromkeys(t["feature"]))
    fig, axes = plt.subplots(
        1, max(len(feats), 1), figsize=(3.6 * max(len(feats), 1), 2.8), squeeze=False
    )
    for ax, f in zip(axes[0], feats, strict=True):
        g = t[t["feature"] == f].sort_values("rank", ascending=False)
        labels = [f"{txt[:28]} ({cat})" for txt, cat in zip(g["text"], g["category"], strict=True)]
        ax.barh(labels, g["activation"], color=sns.color_palette("colorblind", 1)[0])
        ax.set_title(f"feature {f}", fontsize=9)
        ax.set_xlabel("activation")
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"Layer {layer}: what the most moral features fire on (test records)", fontsize=10)
    fig.tight_layout()
    return fig
