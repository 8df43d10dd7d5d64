"""Random-mask controls: prune the same number of weights per matrix at random, many times.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) A targeted mask's
effect means something only beside what pruning *any* weights of that count does. For each
headline mask, ``n_random_masks`` random masks keep its count in every weight matrix
(:func:`random_mask_like`), drawn among the weights the set difference could have chosen (the
retain ranking's protected top-p excluded, as for the targeted mask). Every random mask is
measured like the targeted one: attack success rate (its greedy answers checked against the
unpruned ones, :meth:`moralkit.pruning.measurement.Measures.answers`), the held-out compliance
margin, perplexity, and chapter 08's behavioural measures. :func:`control_table` says where the
targeted mask's effect falls among the random masks' (a percentile), and for the margin the
*excess* drop (targeted minus the random masks' mean) with an interval over evaluation requests
and random masks resampled together (:func:`excess_drop`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from moralkit.diagnostics.resampling import percentile_of
from moralkit.pruning.masks import PruneMask

if TYPE_CHECKING:
    from moralkit.pruning.measurement import Measures

RANDOM_LABEL = "{direction} · random {k}"
UNPRUNED_ARM = "unpruned"  # the unpruned arm's label in chapter 08's measures


def random_mask_like(
    mask: PruneMask,
    seed: int | Sequence[int],
    exclude: Mapping[str, np.ndarray] | None = None,
    label: str = "",
) -> PruneMask:
    """A mask with ``mask``'s count in each matrix, positions drawn uniformly at random among
    the weights not flagged in ``exclude`` (per matrix, a boolean array over its flat weights)."""
    rng = np.random.default_rng(seed)
    indices = {}
    for name, (rows, cols) in mask.shapes.items():
        n = len(mask.indices.get(name, ()))
        excluded = exclude.get(name) if exclude is not None else None
        indices[name] = _draw(rng, rows * cols, n, excluded, name)
    settings = {**mask.settings, "random_seed": list(np.atleast_1d(seed)), "like": mask.label}
    return PruneMask(indices, dict(mask.shapes), label, settings)


def _draw(rng, size: int, n: int, excluded: np.ndarray | None, name: str) -> np.ndarray:
    if n == 0:
        return np.zeros(0, np.int64)
    allowed = size - (int(excluded.sum()) if excluded is not None else 0)
    if n > allowed:
        raise ValueError(f"{name}: cannot draw {n} weights among {allowed} allowed")
    chosen = np.zeros(0, np.int64)
    while len(chosen) < n:  # rejection sampling: excluded weights are a small share
        fresh = rng.integers(0, size, size=2 * (n - len(chosen)) + 16)
        if excluded is not None:
            fresh = fresh[~excluded[fresh]]
        chosen = np.concatenate([chosen, fresh])
        _, first = np.unique(chosen, return_index=True)
        chosen = chosen[np.sort(first)][:n]
    return np.sort(chosen)


def random_masks(
    masks: Mapping[str, PruneMask],
    n: int,
    seed: int,
    exclude: Mapping[str, np.ndarray] | None = None,
) -> dict[str, list[PruneMask]]:
    """``n`` random masks like each of ``masks`` (direction -> mask), seeded per direction and
    draw (``[seed, direction number, k]``), labelled :data:`RANDOM_LABEL`."""
    return {
        direction: [
            random_mask_like(
                mask, [seed, d, k], exclude, RANDOM_LABEL.format(direction=direction, k=k)
            )
            for k in range(n)
        ]
        for d, (direction, mask) in enumerate(masks.items())
    }


def excess_drop(
    base: np.ndarray,
    targeted: np.ndarray,
    random: np.ndarray,
    n_bootstrap: int,
    seed: int,
    confidence: float = 0.95,
) -> tuple[float, float, float]:
    """How much more the targeted mask lowers a per-request measure than random masks do:
    ``mean_i(base - targeted) - mean_k mean_i(base - random_k)`` (``random``: masks x
    requests), with a percentile interval from resampling requests and random masks together
    (``n_bootstrap`` resamples; NaN bounds for fewer than one)."""
    base, targeted, random = (np.asarray(a, dtype=np.float64) for a in (base, targeted, random))
    per_request = random.mean(0) - targeted  # base cancels: (b - t) - (b - r) = r - t
    value = float(per_request.mean())
    if n_bootstrap < 1 or random.shape[0] == 0:
        return value, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_masks, n_req = random.shape
    values = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        req = rng.integers(0, n_req, n_req)
        drawn = rng.integers(0, n_masks, n_masks)
        values[b] = (random[np.ix_(drawn, req)].mean(0) - targeted[req]).mean()
    tail = 50 * (1 - confidence)
    low, high = np.percentile(values, [tail, 100 - tail])
    return value, float(low), float(high)


def control_table(
    model: str,
    direction: str,
    unpruned: Mapping[str, float],
    targeted: Mapping[str, float],
    random: pd.DataFrame,
) -> pd.DataFrame:
    """Per measure: the unpruned and targeted values, the targeted effect (targeted minus
    unpruned), the random masks' effects (mean, sd, range) and the percentile of the targeted
    effect among them (0: below every random mask, 100: above every one)."""
    rows = []
    for measure in unpruned:
        if measure not in random.columns:
            continue
        effects = random[measure].to_numpy(float) - unpruned[measure]
        effects = effects[np.isfinite(effects)]
        effect = targeted[measure] - unpruned[measure]
        rows.append(
            {
                "model": model,
                "direction": direction,
                "measure": measure,
                "unpruned": unpruned[measure],
                "targeted": targeted[measure],
                "targeted_effect": effect,
                "random_mean": float(effects.mean()) if effects.size else np.nan,
                "random_sd": float(effects.std(ddof=1)) if effects.size > 1 else np.nan,
                "random_min": float(effects.min()) if effects.size else np.nan,
                "random_max": float(effects.max()) if effects.size else np.nan,
                "percentile": percentile_of(effect, effects) if effects.size else np.nan,
                "n_random": int(effects.size),
            }
        )
    return pd.DataFrame(rows)


def random_tables(
    measures: Measures,
    masks: Mapping[str, PruneMask],
    randoms: Mapping[str, Sequence[PruneMask]],
    utility: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Every random mask measured (``random_masks``: one row per mask), where the targeted
    mask falls among them (``random_control``, with the excess margin drop and its interval on
    the margin's row) and the per-request held-out margins behind it (``margins``).

    ``utility``: chapter 08's measures per arm (index: arm label, "unpruned" or a direction or a
    random mask's label; columns: benchmarks)."""
    model, config = measures.loaded.name, measures.config
    base = measures.margins(None)["held_out"]
    rows, controls, margins = [], [], [_margin_rows(model, "none", UNPRUNED_ARM, -1, base)]

    def values(mask: PruneMask | None, label: str, verify: bool = False) -> dict[str, float]:
        extra = utility.loc[label].to_dict() if label in utility.index else {}
        return {"asr": measures.asr(mask, verify), **measures.cheap(mask, prefix=False), **extra}

    unpruned = values(None, UNPRUNED_ARM)
    for direction, drawn in randoms.items():
        mask = masks[direction]
        own = measures.margins(mask)["held_out"]
        margins.append(_margin_rows(model, direction, "targeted", -1, own))
        table = []
        for k, random in enumerate(drawn):
            got = values(random, random.label, verify=True)
            table.append(
                {
                    "model": model,
                    "direction": direction,
                    "draw": k,
                    "n_pruned": random.n_pruned,
                    "fraction_pruned": random.fraction,
                    "n_regenerated": measures.answers(random, verify=True)[1],
                    **got,
                }
            )
            margins.append(
                _margin_rows(model, direction, "random", k, measures.margins(random)["held_out"])
            )
        table = pd.DataFrame(table)
        rows.append(table)
        control = control_table(model, direction, unpruned, values(mask, direction), table)
        stacked = np.stack([measures.margins(r)["held_out"] for r in drawn])
        excess = excess_drop(base, own, stacked, config.n_bootstrap, config.seed)
        on_margin = control["measure"] == "compliance_margin"
        names = ("excess_drop", "excess_ci_low", "excess_ci_high")
        for column, value in zip(names, excess, strict=True):
            control.loc[on_margin, column] = value
        controls.append(control)
    return {
        "random_masks": pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(),
        "random_control": pd.concat(controls, ignore_index=True) if controls else pd.DataFrame(),
        "margins": pd.concat(margins, ignore_index=True),
    }


def _margin_rows(model: str, direction: str, condition: str, draw: int, margins) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": model,
            "direction": direction,
            "condition": condition,
            "draw": draw,
            "request": np.arange(len(margins)),
            "margin": np.asarray(margins, dtype=float),
        }
    )
