"""The random-neuron control as a distribution: where the value edit falls among random edits.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. ValueLocate's claim is that
editing a value's neurons moves the questionnaire more than editing random neurons. One random
draw cannot say that; here every target value and γ gets ``n_random`` random neuron sets
(:func:`moralkit.neurons.edit.random_like`: the same count per layer, the same ``P`` and
``diff`` values, a different seed per draw), each measured on the same items as the value edit.
The value edit's *separation* (target items' shift minus the opposite value's items' shift) is
then reported as a **percentile** of the random separations::

    percentile = 100 * (#{random < value} + 0.5 * #{random == value}) / n_random

with the one-sided permutation p-value ``(1 + #{random >= value}) / (1 + n_random)`` beside it.
Its interval comes from resampling the *items* (with replacement, within each target value and
role): every resample recomputes the value edit's and all random edits' separations on the same
items, so the interval says how much the percentile depends on which items were measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moralkit.diagnostics.resampling import percentile_of, permutation_p

ROLES = ("target", "opposite")
#: the pooled row of :func:`random_control_table` (all edited target values together)
POOLED = "all edited values"


@dataclass(frozen=True)
class EditShifts:
    """Per-item rating shifts of one target value's items and its opposite's, for the value
    edit (``value_*``: one row) and each random draw (``random_*``: draws x items)."""

    value_target: np.ndarray
    value_opposite: np.ndarray
    random_target: np.ndarray
    random_opposite: np.ndarray

    @property
    def n_items(self) -> tuple[int, int]:
        return len(self.value_target), len(self.value_opposite)


def separations(shifts: Sequence[EditShifts]) -> tuple[float, np.ndarray]:
    """Separation of the value edit and of each random draw, averaged over target values."""
    value = np.mean([s.value_target.mean() - s.value_opposite.mean() for s in shifts])
    random = np.mean([s.random_target.mean(1) - s.random_opposite.mean(1) for s in shifts], axis=0)
    return float(value), random


def percentile_interval(
    shifts: Sequence[EditShifts], n_bootstrap: int, seed: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the value edit's percentile over item resamples (module doc).

    Items are resampled with replacement within each target value and role, the same resample
    for the value edit and every random draw (they answered the same items).
    """
    if n_bootstrap < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    value = np.zeros(n_bootstrap)
    random = np.zeros((n_bootstrap, shifts[0].random_target.shape[0]))
    for s in shifts:
        for sign, own, others in (
            (1.0, s.value_target, s.random_target),
            (-1.0, s.value_opposite, s.random_opposite),
        ):
            idx = rng.integers(0, len(own), size=(n_bootstrap, len(own)))
            value += sign * own[idx].mean(1)
            random += sign * others[:, idx].mean(-1).T
    pct = percentile_of(value, random)
    tail = 50 * (1 - confidence)
    low, high = np.percentile(pct, [tail, 100 - tail])
    return float(low), float(high)


def _edit_shifts(ratings: pd.DataFrame, target: str, gamma: float) -> EditShifts | None:
    """The shifts of one (model's) target value at one γ, items in a fixed order."""
    rows = ratings[(ratings["target"] == target) & (ratings["gamma"] == gamma)]
    value = rows[rows["mode"] == "value"]
    random = rows[rows["mode"] == "random"]
    if value.empty or random.empty:
        return None
    out = {}
    for role in ROLES:
        v = value[value["role"] == role].sort_values("item_id")
        r = random[random["role"] == role].pivot(index="draw", columns="item_id", values="shift")
        r = r.reindex(columns=v["item_id"].to_numpy())
        out[role] = (v["shift"].to_numpy(float), r.to_numpy(float))
    return EditShifts(out["target"][0], out["opposite"][0], out["target"][1], out["opposite"][1])


def random_control_table(
    ratings: pd.DataFrame, n_bootstrap: int, seed: int, confidence: float = 0.95
) -> pd.DataFrame:
    """Per model, γ > 0 and target value (plus the pooled row :data:`POOLED`): the value edit's
    separation, the random separations' mean, spread and range, the percentile with its item
    interval, the permutation p-value and the item and draw counts."""
    rows = []
    for model, per_model in ratings.groupby("model", sort=False):
        for gamma in sorted(g for g in per_model["gamma"].unique() if g != 0):
            found = {t: _edit_shifts(per_model, t, gamma) for t in per_model["target"].unique()}
            found = {t: s for t, s in found.items() if s is not None}
            groups = [([t], [s]) for t, s in found.items()]
            if len(found) > 1:
                groups.append(([POOLED], list(found.values())))
            for (name,), shifts in groups:
                rows.append(_row(model, name, gamma, shifts, n_bootstrap, seed, confidence))
    return pd.DataFrame(rows)


def _row(model, target, gamma, shifts, n_bootstrap, seed, confidence) -> dict:
    value, random = separations(shifts)
    low, high = percentile_interval(shifts, n_bootstrap, seed, confidence)
    n_items = np.array([s.n_items for s in shifts]).sum(0)
    return {
        "model": model,
        "target": target,
        "gamma": float(gamma),
        "separation": value,
        "random_mean": float(random.mean()),
        "random_sd": float(random.std(ddof=1)) if random.size > 1 else float("nan"),
        "random_low": float(np.percentile(random, 2.5)),
        "random_high": float(np.percentile(random, 97.5)),
        "percentile": percentile_of(value, random),
        "ci_low": low,
        "ci_high": high,
        "p_value": permutation_p(value, random),
        "n_random": int(random.size),
        "n_target_items": int(n_items[0]),
        "n_opposite_items": int(n_items[1]),
    }


def random_draws_table(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per model, target, γ > 0, mode and draw: mean target shift, mean opposite shift and
    their difference (the separation); the long table behind the distribution figure."""
    edited = ratings[ratings["gamma"] != 0]
    keys = ["model", "target", "gamma", "mode", "draw"]
    column = edited["role"].map({"target": "target_shift", "opposite": "opposite_shift"})
    means = edited.assign(column=column).pivot_table(
        index=keys, columns="column", values="shift", aggfunc="mean", sort=False
    )
    means = means.reindex(columns=["target_shift", "opposite_shift"]).reset_index()
    means.columns.name = None
    return means.assign(separation=means["target_shift"] - means["opposite_shift"])


def cell_label(row: Mapping) -> str:
    """``"model · target"``: the name of one claim cell."""
    return f"{row['model']} · {row['target']}"
