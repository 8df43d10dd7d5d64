"""What every figure module shares: the input check and one colour per model."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import seaborn as sns


def require_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    """Raise a ValueError naming the table and the columns it lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} table lacks columns {missing}")


#: the colour-blind-safe palette has this many colours; more models would repeat them
_SAFE_COLOURS = 10


def model_colours(models: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A distinct colour for each model, stable in the order given: colour-blind-safe up to
    ten models, evenly spaced hues beyond (the paper profile's 23 would otherwise share)."""
    palette = "colorblind" if len(models) <= _SAFE_COLOURS else "husl"
    return dict(zip(models, sns.color_palette(palette, len(models)), strict=True))


def legend_below(fig, handles: Sequence, labels: Sequence[str], fontsize: int = 8) -> None:
    """One figure legend under the axes, as many rows as it needs (the saved figure grows to
    hold it: savefig(bbox_inches="tight")), so it never covers an axis."""
    ncol = min(len(labels), 4 if len(labels) > 12 else 6)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
               frameon=False, fontsize=fontsize)  # fmt: skip
