"""Figures of what a verdict rests on: planted-effect power curves and the positive control.

(book: Methods › Power, controls and stability, methods/power.md.) Inputs are the tables of
:class:`moralkit.diagnostics.power.PowerResult` and the per-model table of
:func:`moralkit.diagnostics.evidence.evidence_table`; the margin comes from ``claims.yaml``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from moralkit.figures.style import model_colours, require_columns


def plot_power_curve(
    curve: pd.DataFrame,
    mde: pd.DataFrame,
    margin: float | None = None,
    effect_label: str = "effect",
) -> Figure:
    """Left: detection rate against the mean measured effect at each planted strength, with
    Wilson 95% bands, the 80% target, the test level, each model's MDE (dotted) and the
    claim's margin (dashed). Right: the calibration, planted strength against measured effect
    (mean ± sd over draws)."""
    require_columns(
        curve, ["model", "strength", "power", "power_low", "power_high", "effect_mean"], "curve"
    )
    require_columns(mde, ["model", "mde", "target", "alpha"], "mde")
    models = list(dict.fromkeys(curve["model"]))
    colours = model_colours(models)
    fig, (ax, cal) = plt.subplots(1, 2, figsize=(10.5, 3.6))
    for model in models:
        g = curve[curve["model"] == model].sort_values("strength")
        c = colours[model]
        ax.plot(g["effect_mean"], g["power"], "o-", color=c, label=model)
        ax.fill_between(g["effect_mean"], g["power_low"], g["power_high"], color=c, alpha=0.2)
        row = mde[mde["model"] == model]
        if len(row) and np.isfinite(row["mde"].iloc[0]):
            ax.axvline(row["mde"].iloc[0], color=c, ls=":", lw=1.5)
        sd = g["effect_sd"] if "effect_sd" in g else 0.0
        cal.errorbar(g["strength"], g["effect_mean"], yerr=sd, fmt="o-", color=c, capsize=2)
    target, alpha = float(mde["target"].iloc[0]), float(mde["alpha"].iloc[0])
    ax.axhline(target, color="0.3", lw=0.8, ls="--")
    ax.axhline(alpha, color="0.6", lw=0.8, ls="--")
    ax.text(ax.get_xlim()[0], target, f" {target:.0%} power", va="bottom", fontsize=8)
    ax.text(ax.get_xlim()[0], alpha, f" level {alpha:g}", va="bottom", fontsize=8, color="0.4")
    if margin is not None:
        ax.axvline(margin, color="black", ls="--", lw=1.2, label=f"margin {margin:g}")
    ax.set_xlabel(f"measured {effect_label} (mean over draws)")
    ax.set_ylabel("share of draws detected")
    ax.set_ylim(-0.03, 1.03)
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    cal.axhline(0, color="0.6", lw=0.6)
    if margin is not None:
        cal.axhline(margin, color="black", ls="--", lw=1.0)
    cal.set_xlabel("planted strength (× noise unit)")
    cal.set_ylabel(f"measured {effect_label}")
    cal.set_title("calibration", fontsize=10)
    ax.set_title("power against effect (dotted: MDE per model)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_control_beside_result(
    evidence: pd.DataFrame, effect_label: str = "effect", control_label: str = "control"
) -> Figure:
    """Per model, the moral result and the positive control on the same effect scale, each
    with its 95% interval; the margin (when the table has one) dashed. A hollow control
    marker means the control was not detected."""
    require_columns(
        evidence,
        ["model", "value", "ci_low", "ci_high", "control_value", "control_ci_low",
         "control_ci_high", "control_detected"],
        "evidence",
    )  # fmt: skip
    models = list(dict.fromkeys(evidence["model"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.8 * len(models)))
    for i, row in enumerate(evidence.itertuples()):
        for offset, value, low, high, colour, filled in (
            (0.15, row.value, row.ci_low, row.ci_high, "#0072B2", True),
            (-0.15, row.control_value, row.control_ci_low, row.control_ci_high, "#D55E00",
             bool(row.control_detected)),
        ):  # fmt: skip
            y = i + offset
            ax.plot([low, high], [y, y], color=colour, lw=2)
            ax.plot(value, y, "o", color=colour, mfc=colour if filled else "white", ms=8)
    if "margin" in evidence and evidence["margin"].notna().any():
        margin = float(evidence["margin"].dropna().iloc[0])
        ax.axvline(margin, color="black", ls="--", lw=1.2)
        ax.text(margin, len(models) - 0.45, f" margin {margin:g}", fontsize=8)
    ax.axvline(0, color="0.6", lw=0.6)
    ax.set_yticks(range(len(models)), models)
    ax.set_ylim(-0.6, len(models) - 0.3)
    ax.set_xlabel(effect_label)
    handles = [
        plt.Line2D([], [], color="#0072B2", marker="o", lw=2, label="moral result"),
        plt.Line2D([], [], color="#D55E00", marker="o", lw=2, label=control_label),
        plt.Line2D(
            [], [], color="#D55E00", marker="o", mfc="white", lw=0, label="control not detected"
        ),
    ]
    ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return fig
