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


def model_colours(models: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """A colour-blind-safe colour for each model, stable in the order given."""
    return dict(zip(models, sns.color_palette("colorblind", len(models)), strict=True))
