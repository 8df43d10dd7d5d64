"""Figures for the replication chapter (book: Methods › Ground truths, methods/ground-truths.md).

Inputs are the tidy tables of :mod:`moralkit.replication`; each function returns a matplotlib
Figure and does no analysis.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from moralkit.claims import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    NOT_CHECKABLE,
    VERDICT_COLOURS,
    load_claims,
)
from moralkit.figures.style import model_colours, require_columns
from moralkit.replication import (
    FAILS,
    HOLDS,
    INDIFFERENCE_CLAIMS,
    NOT_APPLICABLE,
    UNDECIDED,
    UNJUDGED,
)

PANEL_TITLES = {
    "categorical": "Categorical: virtue–vice centre cosine",
    "gradient": "Gradient: peak Spearman ρ with typicality",
    "structural": "Structural: clusters vs. foundation × pole (ARI)",
    "dimensional": "Dimensional: best probe R² of the moral vector",
}


#: each replication verdict in the colour of the claims page's verdict
FACE = {
    HOLDS: VERDICT_COLOURS[AGREES],
    FAILS: VERDICT_COLOURS[DISAGREES],
    UNDECIDED: VERDICT_COLOURS[INCONCLUSIVE],
    UNJUDGED: VERDICT_COLOURS[NOT_CHECKABLE],
}


def _threshold(diagnostic: str) -> float | None:
    """The claim's margin where it bounds the plotted headline itself (not a derived field)."""
    check = load_claims()[INDIFFERENCE_CLAIMS[diagnostic]].check
    if check.get("op") == "equivalence" and "field" not in check and check["side"] == "upper":
        return float(check["margin"])
    return float(check["target"]) if check.get("op") in ("at_most", "at_least") else None


#: one marker shape per model, so that the fill can carry the verdict's colour
SHAPES = ("o", "s", "^", "D", "v", "P", "X", "*")


def _panel(ax, rows: pd.DataFrame, gts: list[str], colours: dict, diagnostic: str) -> None:
    models = list(colours)
    width = 0.7 / max(len(models), 1)
    for i, model in enumerate(models):
        mine = rows[rows["model"] == model].set_index("ground_truth")
        for j, gt in enumerate(gts):
            if gt not in mine.index:
                continue
            row = mine.loc[gt]
            x = j - 0.35 + width * (i + 0.5)
            if row["verdict"] == NOT_APPLICABLE:
                ax.text(x, 0.5, "n/a", transform=ax.get_xaxis_transform(), ha="center",
                        va="center", fontsize=8, color="0.4", rotation=90)  # fmt: skip
                continue
            if np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]):
                # drawn as a segment: a basic bootstrap interval need not contain the estimate
                ax.vlines(x, row["ci_low"], row["ci_high"], color=colours[model], linewidth=1.5)
            face = FACE.get(row["verdict"], FACE[UNJUDGED])
            ax.plot(x, row["value"], SHAPES[i % len(SHAPES)], markerfacecolor=face,
                    markeredgecolor="black", markersize=8)  # fmt: skip
    threshold = _threshold(diagnostic)
    if threshold is not None:
        ax.axhline(threshold, color="0.5", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(gts)), gts)
    ax.set_title(PANEL_TITLES.get(diagnostic, diagnostic), fontsize=10)
    ax.set_xlim(-0.6, len(gts) - 0.4)


def plot_replication(verdicts: pd.DataFrame) -> Figure:
    """One panel per diagnostic: each model's headline value per ground truth.

    Marker shape and bar colour: the model; marker fill: the verdict's colour (the claims
    page's: holds / fails / inconclusive / not checkable); "n/a": the diagnostic does not apply
    (no typicality). Bars: the diagnostic's 95% interval where it has one; dashed line: the
    claim's margin from ``claims.yaml`` where it bounds the plotted headline (the categorical
    claim bounds the separation from the permutation null instead).
    """
    require_columns(
        verdicts, ["model", "ground_truth", "diagnostic", "value", "verdict"], "verdicts"
    )
    diagnostics = list(dict.fromkeys(verdicts["diagnostic"]))
    gts = list(dict.fromkeys(verdicts["ground_truth"]))
    colours = model_colours(list(dict.fromkeys(verdicts["model"])))
    ncols = 2 if len(diagnostics) > 1 else 1
    nrows = int(np.ceil(len(diagnostics) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.4 * nrows), squeeze=False)
    table = verdicts.assign(
        ci_low=verdicts["ci_low"].astype(float), ci_high=verdicts["ci_high"].astype(float)
    )
    for ax, diagnostic in zip(axes.flat, diagnostics, strict=False):
        _panel(ax, table[table["diagnostic"] == diagnostic], gts, colours, diagnostic)
    for ax in list(axes.flat)[len(diagnostics) :]:
        ax.set_visible(False)
    handles = [
        Line2D(
            [],
            [],
            color=c,
            marker=SHAPES[i % len(SHAPES)],
            markerfacecolor="white",
            markeredgecolor="black",
            label=m,
        )  # fmt: skip
        for i, (m, c) in enumerate(colours.items())
    ]
    handles += [Patch(color=face, label=f"indifference {word}") for word, face in FACE.items()]
    ncol = min(len(handles), 4)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    rows = -(-len(handles) // ncol)
    fig.tight_layout(rect=(0, 0.04 + 0.035 * rows, 1, 1))
    return fig


def plot_lexicon_agreement(agreement: pd.DataFrame) -> Figure:
    """Heat map of the lexicons' pooled rank agreement (Spearman ρ over shared words)."""
    require_columns(agreement, ["lexicon_a", "lexicon_b", "foundation", "spearman"], "agreement")
    pooled = agreement[agreement["foundation"] == "all"]
    names = list(dict.fromkeys([*pooled["lexicon_a"], *pooled["lexicon_b"]]))
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    counts = pd.DataFrame("", index=names, columns=names)
    for row in pooled.itertuples():
        matrix.loc[row.lexicon_a, row.lexicon_b] = row.spearman
        matrix.loc[row.lexicon_b, row.lexicon_a] = row.spearman
        counts.loc[row.lexicon_a, row.lexicon_b] = f"n={row.n_shared}"
        counts.loc[row.lexicon_b, row.lexicon_a] = f"n={row.n_shared}"
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 1.1 * len(names) + 1))
    shown = matrix.to_numpy(dtype=float, copy=True)
    np.fill_diagonal(shown, np.nan)  # a lexicon against itself says nothing
    image = ax.imshow(np.ma.masked_invalid(shown), cmap="RdBu", vmin=-1, vmax=1)
    ax.set_facecolor("0.9")
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            value = matrix.loc[a, b]
            if i == j:
                continue
            text = "–" if not np.isfinite(value) else f"{value:.2f}"
            colour = "white" if np.isfinite(value) and abs(value) > 0.6 else "black"
            ax.text(j, i, f"{text}\n{counts.loc[a, b]}", ha="center", va="center",
                    fontsize=8, color=colour)  # fmt: skip
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    fig.colorbar(image, ax=ax, label="Spearman ρ of signed ratings")
    ax.set_title("Do the lexicons agree on the words they share?", fontsize=10)
    fig.tight_layout()
    return fig
