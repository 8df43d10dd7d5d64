"""Figures for the SAE surgery (paper §4.2-4.4, §5.4; book: Methods › SAE surgery,
methods/sae.md).

Inputs are the tables of :class:`moralkit.sae.tables.SurgeryResult` and
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
EFFECT_METRIC = {
    "categorical": "virtue_vice_cosine",
    "gradient": "spearman_heldout",
    "structural": "ari_mft15",
    "dimensional": "r2_ridge_cv",
}
METRIC_LABELS = {
    "virtue_vice_cosine": "virtue–vice centre cosine, drop (more = better separated)",
    "spearman_heldout": "typicality Spearman ρ, held-out (more = finer)",
    "ari_mft15": "clustering ARI vs foundations (more = better)",
    "r2_ridge_cv": "ridge probe R² (more = more decodable)",
}
#: the comparisons the effects figure shows, top to bottom
COMPARISON_ORDER = (
    "finetuned − pretrained",
    "finetuned codes − pretrained codes",
    "pretrained − original",
    "finetuned − original",
)


def _first_seed(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["seed"] == table["seed"].min()] if "seed" in table.columns else table


def plot_pretraining(history: pd.DataFrame) -> Figure:
    """Per layer and seed: validation explained variance (dashed: without the top direction),
    L0, λ and resampled latents over training steps."""
    require_columns(
        history,
        ("layer", "seed", "step", "val_explained_variance", "val_l0", "lambda_end", "resampled"),
        "pretraining history",
    )
    panels = [
        ("val_explained_variance", "explained variance (held-out texts)"),
        ("val_l0", "L0 (active latents)"),
        ("lambda_end", "λ"),
        ("resampled", "latents resampled (cumulative)"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(12.5, 3.2))
    groups = list(history.groupby(["layer", "seed"]))
    colours = sns.color_palette("colorblind", max(len(groups), 1))
    for colour, ((layer, seed), g) in zip(colours, groups, strict=False):
        for ax, (col, _) in zip(axes, panels, strict=True):
            ax.plot(g["step"], g[col], color=colour, lw=1.2, label=f"layer {layer} seed {seed}")
        if "val_explained_variance_rest" in g:
            axes[0].plot(g["step"], g["val_explained_variance_rest"], color=colour, lw=1, ls="--")
    for ax, (_, title) in zip(axes, panels, strict=True):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
    low = float(np.nanmin(history["val_explained_variance"])) if len(history) else 0.0
    axes[0].set_ylim(max(-0.05, min(low, 0.5)), 1.0)
    axes[2].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_feature_types(layers: pd.DataFrame) -> Figure:
    """Share of monosemantic, polysemantic and weak features per layer (mean over seeds),
    with the monosemantic share expected by chance (dotted)."""
    cols = ("layer", "mono_ratio", "poly_ratio", "weak_ratio", "mono_ratio_chance")
    require_columns(layers, cols, "layers")
    shares = layers.groupby("layer")[list(cols[1:])].mean()
    bars = shares[["mono_ratio", "poly_ratio", "weak_ratio"]]
    bars.columns = ["monosemantic", "polysemantic", "weak"]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    bars.plot.bar(stacked=True, ax=ax, color=sns.color_palette("colorblind", 3), rot=0)
    for k, chance in enumerate(shares["mono_ratio_chance"]):
        ax.plot([k - 0.3, k + 0.3], [chance, chance], color="black", ls=":", lw=1.5)
    ax.plot([], [], color="black", ls=":", label="monosemantic by chance")
    ax.set_ylabel("share of SAE features")
    ax.set_xlabel("layer")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def plot_top_features_heatmap(features: pd.DataFrame, layer: int, n: int = 25) -> Figure:
    """Pearson r with the ten moral dimensions for the ``n`` features of ``layer`` (first seed)
    with the largest |r|."""
    require_columns(features, ("layer", "feature", "abs_r_max", "type", *DIMENSIONS), "features")
    f = _first_seed(features[features["layer"] == layer]).nlargest(n, "abs_r_max")
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
    """Validation value of each objective term over fine-tuning epochs: one line per layer and
    fold of the first seed, coloured by layer."""
    terms = [t for t in TERM_LABELS if f"val_{t}" in history.columns]
    require_columns(history, ("layer", "epoch"), "fine-tuning history")
    history = _first_seed(history)
    keys = [k for k in ("layer", "fold") if k in history.columns]
    layers = list(dict.fromkeys(history["layer"]))
    colours = dict(zip(layers, sns.color_palette("colorblind", len(layers)), strict=True))
    cols = 4
    rows = int(np.ceil(len(terms) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    for ax, term in zip(axes.flat, terms, strict=False):
        for _, g in history.groupby(keys):
            colour = colours[g["layer"].iloc[0]]
            ax.plot(g["epoch"], g[f"val_{term}"], marker=".", lw=1, color=colour)
        ax.set_title(TERM_LABELS[term], fontsize=9)
        ax.set_xlabel("epoch")
    for ax in axes.flat[len(terms) :]:
        ax.axis("off")
    for layer, colour in colours.items():
        axes.flat[0].plot([], [], color=colour, label=f"layer {layer}")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _effect_cell(ax, cell: pd.DataFrame, ypos: dict) -> None:
    for r in cell.itertuples():
        sign = 1 if r.better == "higher" else -1
        lo, hi = sorted((sign * r.ci_low, sign * r.ci_high))
        y = ypos[r.comparison]
        if str(r.seed) == "all":
            ax.plot([lo, hi], [y, y], color="black", lw=6, alpha=0.2, solid_capstyle="butt")
            continue
        x = sign * r.difference
        y += 0.15 * (int(r.seed) % 3 - 1)
        ax.errorbar(x, y, xerr=[[x - lo], [hi - x]], fmt="o", ms=3, lw=1, capsize=2, color="C0")


def plot_effects(differences: pd.DataFrame, margin: float | None = None) -> Figure:
    """Effects per diagnostic (columns) and ground truth (rows), oriented so that right means
    less indifferent: each seed's difference with its paired-bootstrap interval (dots) and the
    envelope over seeds (grey bar); ``margin``: dotted lines at ±margin."""
    cols = ("ground_truth", "seed", "comparison", "diagnostic", "difference", "ci_low",
            "ci_high", "better")  # fmt: skip
    require_columns(differences, cols, "differences")
    d = differences[differences["comparison"].isin(COMPARISON_ORDER)]
    if d.empty:  # every layer below the reconstruction gate: nothing was re-diagnosed
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.text(0.5, 0.5, "no SAE layer passed the reconstruction gate: no effects",
                ha="center", va="center")  # fmt: skip
        ax.axis("off")
        return fig
    gts = list(dict.fromkeys(d["ground_truth"]))
    diags = [m for m in EFFECT_METRIC if m in set(d["diagnostic"])]
    n_rows, n_cols = max(len(gts), 1), max(len(diags), 1)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(3.2 * n_cols + 1.5, 1.9 * n_rows + 0.7), squeeze=False,
        sharey=True,
    )  # fmt: skip
    ypos = {c: -k for k, c in enumerate(COMPARISON_ORDER)}
    for i, gt in enumerate(gts):
        for j, diag in enumerate(diags):
            ax = axes[i][j]
            _effect_cell(ax, d[(d["ground_truth"] == gt) & (d["diagnostic"] == diag)], ypos)
            ax.axvline(0, color="grey", lw=0.8)
            for m in (-margin, margin) if margin else ():
                ax.axvline(m, color="grey", lw=0.8, ls=":")
            if i == 0:
                ax.set_title(METRIC_LABELS[EFFECT_METRIC[diag]], fontsize=7.5, wrap=True)
            ax.set_yticks(list(ypos.values()), list(ypos) if j == 0 else [], fontsize=7)
            if j == 0:
                ax.set_ylabel(gt, fontsize=8)
    fig.supxlabel("effect (right = less indifferent)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_top_records(top: pd.DataFrame, layer: int) -> Figure:
    """For a few features of ``layer`` (first seed): the records they fire on most, as bars."""
    require_columns(top, ("layer", "feature", "rank", "activation", "text", "category"), "top")
    t = _first_seed(top[top["layer"] == layer])
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
    fig.suptitle(f"Layer {layer}: what the most moral features fire on", fontsize=10)
    fig.tight_layout()
    return fig
