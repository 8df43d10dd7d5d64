"""Power by planted effects: the smallest effect a diagnostic detects on the run's own data.

(book: Methods › Power, controls and stability, methods/power.md.) A "no effect" verdict means
something only if the sample could have seen an effect of the size that matters. For one model
and the layer a verdict is based on, a *planted design*
(:mod:`moralkit.diagnostics.planted`) turns the run's own activations into a draw with no
effect (labels or rows shuffled) plus a known effect of strength ``s``, runs the diagnostic
and returns the measured effect in the claim's units and, where the diagnostic has its own
test, a p-value. Over many draws at each strength,

.. math::

   \\text{power}(s) = P(\\text{detected} \\mid s), \\qquad
   \\text{MDE} = \\bar e(s^*) \\text{ with } \\text{power}(s^*) = 0.8,

where :math:`\\bar e(s)` is the mean measured effect at strength ``s`` (the calibration from
planted strength to the claim's effect scale) and :math:`s^*` is interpolated on the
monotone (isotonic) fit of the power curve. Detected means ``p < alpha`` for a design with
its own test; otherwise the measured effect exceeds the ``1 - alpha`` quantile of
``n_null_draws`` separate no-effect draws (a calibrated threshold, so the false-positive rate
is ``alpha`` by construction, and the power at ``s = 0`` is estimated on other draws).
When the largest strength is still detected in fewer than 80% of draws, it is doubled (at
most ``max_extensions`` times); if the target is never reached, the MDE is reported as the
largest effect tested with ``reached = False`` (a lower bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.isotonic import IsotonicRegression

from moralkit.results import AnalysisResult
from moralkit.threads import blas_threads

#: A draw: ``(strength in the design's units, rng) -> (effect, p-value or None)``.
DrawFunction = Callable[[float, np.random.Generator], tuple[float, float | None]]


@dataclass(frozen=True)
class PowerConfig:
    """Settings of a planted-effect power analysis (book: Methods › Power, methods/power.md).

    ``strengths`` are multiples of the design's unit (its typical noise scale), 0 first
    (None: the design's own grid);
    ``n_draws`` draws are made at each; ``n_null_draws`` no-effect draws (None: twice
    ``n_draws``, at least 40) calibrate the detection threshold of designs without their own
    test. ``alpha`` is the test level and
    ``target`` the power the MDE is read at. ``max_extensions`` doublings of the largest
    strength are tried while its power stays below ``target``. ``blas_threads`` caps the
    BLAS threads of the draws (1: on a busy 2-core machine two threads were several times
    slower on these small products; None or 0: the library default).
    """

    strengths: tuple[float, ...] | None = None
    n_draws: int = 40
    n_null_draws: int | None = None
    alpha: float = 0.05
    target: float = 0.8
    max_extensions: int = 3
    seed: int = 0
    blas_threads: int | None = 1

    def __post_init__(self) -> None:
        if self.strengths is not None:
            object.__setattr__(self, "strengths", check_strengths(self.strengths))
        if self.n_null_draws is None:
            object.__setattr__(self, "n_null_draws", max(2 * self.n_draws, 40))
        if self.n_draws < 2 or self.n_null_draws < 2:
            raise ValueError(
                f"n_draws={self.n_draws} and n_null_draws={self.n_null_draws} must be >= 2"
            )
        if not 0 < self.alpha < 1 or not 0 < self.target < 1:
            raise ValueError(f"alpha={self.alpha} and target={self.target} must lie in (0, 1)")
        if self.max_extensions < 0:
            raise ValueError(f"max_extensions={self.max_extensions} must be >= 0")


def check_strengths(strengths: object) -> tuple[float, ...]:
    """A strength grid as floats; ValueError unless at least two, increasing, from 0."""
    values = tuple(float(x) for x in strengths)  # type: ignore[union-attr]
    if len(values) < 2 or values[0] != 0 or any(np.diff(values) <= 0):
        raise ValueError(f"strengths={strengths!r}: expected increasing values starting at 0")
    return values


@dataclass(frozen=True)
class PlantedDesign:
    """How one diagnostic's effect is planted and measured at one model and layer.

    ``draw`` makes one draw (see :data:`DrawFunction`); ``unit`` is strength 1.0 in the
    activations' units; ``own_test`` says whether draws return the diagnostic's own p-value
    (else the threshold is calibrated on no-effect draws); ``effect`` names the measured
    quantity in the claim's units and ``planted`` / ``test`` say in words what is planted and
    what counts as detected. ``strengths`` is the design's default grid (multiples of
    ``unit``); ``null_centred`` reports effects as the excess over the mean of the no-effect
    draws (for a calibrated design whose surrogate is biased where the claim's is not).
    """

    diagnostic: str
    model: str
    layer: int
    effect: str
    planted: str
    test: str
    unit: float
    own_test: bool
    draw: DrawFunction
    strengths: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    null_centred: bool = False


@dataclass
class PowerResult(AnalysisResult):
    """Planted-effect power of one or more diagnostics x models (one layer each).

    - ``draws``: one row per draw: model, diagnostic, layer, strength (multiple of the unit),
      draw, effect, p (NaN for calibrated designs), detected.
    - ``curve``: per strength: power with its Wilson 95% interval, mean and sd of the effect.
    - ``mde``: one row per model x diagnostic: ``mde`` (claim units), ``mde_strength``,
      ``reached``, ``alpha``, ``target``, ``threshold`` (calibrated designs),
      ``false_positive_rate`` (power at strength 0), ``n_draws``, ``detail``.

    ``best()`` is the ``mde`` table (one row per model and diagnostic).
    """

    TABLES = ("draws", "curve", "mde")
    NO_CLAIM = (
        "a power analysis is evidence behind a diagnostic's claim, not a claim: its MDE is "
        "recorded with that claim by the diagnostic's claim(power=...)"
    )
    BEST_TABLE = "mde"
    BEST_COLUMN = "mde"
    BEST_LOWER = True
    BEST_GROUP = ("model", "diagnostic")

    def mde_row(self, model: str, diagnostic: str | None = None) -> pd.Series:
        """The ``mde`` row of one model (and diagnostic); KeyError naming what is missing."""
        t = self.tables["mde"]
        sel = t[t["model"] == model]
        if diagnostic is not None:
            sel = sel[sel["diagnostic"] == diagnostic]
        if sel.empty:
            raise KeyError(f"no power analysis for model {model!r} ({diagnostic or 'any'})")
        return sel.iloc[0]


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion (scipy's ``binomtest``)."""
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(level, method="wilson")
    return float(ci.low), float(ci.high)


def minimum_detectable(curve: pd.DataFrame, target: float) -> tuple[float, float, bool]:
    """``(mde, strength, reached)`` from one power curve (columns strength, power, n_draws,
    effect_mean), on the isotonic fit of power against strength (see the module docstring)."""
    curve = curve.sort_values("strength")
    strength = curve["strength"].to_numpy(float)
    effect = curve["effect_mean"].to_numpy(float)
    power = (
        IsotonicRegression(increasing=True)
        .fit(strength, curve["power"].to_numpy(float), sample_weight=curve["n_draws"].to_numpy())
        .predict(strength)
    )
    above = np.flatnonzero(power >= target)
    if above.size == 0:
        return float(effect[-1]), float(strength[-1]), False
    i = int(above[0])
    if i == 0:
        return float(effect[0]), float(strength[0]), True
    frac = (target - power[i - 1]) / (power[i] - power[i - 1])
    mde = effect[i - 1] + frac * (effect[i] - effect[i - 1])
    return float(mde), float(strength[i - 1] + frac * (strength[i] - strength[i - 1])), True


def _run_strength(
    design: PlantedDesign, strength: float, n: int, seeds: np.random.SeedSequence
) -> list[tuple[float, float | None]]:
    return [
        design.draw(strength * design.unit, np.random.default_rng(child))
        for child in seeds.spawn(n)
    ]


def _curve_row(strength: float, rows: list[dict]) -> dict:
    effects = np.array([r["effect"] for r in rows], dtype=float)
    hits = int(sum(r["detected"] for r in rows))
    low, high = wilson_interval(hits, len(rows))
    return {
        "strength": strength,
        "n_draws": len(rows),
        "power": hits / len(rows),
        "power_low": low,
        "power_high": high,
        "effect_mean": float(np.nanmean(effects)) if np.isfinite(effects).any() else np.nan,
        "effect_sd": float(np.nanstd(effects)) if np.isfinite(effects).any() else np.nan,
    }


def power_analysis(design: PlantedDesign, config: PowerConfig = PowerConfig()) -> PowerResult:
    """Power curve and MDE of one planted design (see the module docstring)."""
    with blas_threads(config.blas_threads):
        return _power_analysis(design, config)


def _power_analysis(design: PlantedDesign, config: PowerConfig) -> PowerResult:
    root = np.random.SeedSequence(config.seed)
    null_seeds, grid_seeds = root.spawn(2)
    threshold, shift = np.nan, 0.0
    if not design.own_test:
        null = np.array([e for e, _ in _run_strength(design, 0.0, config.n_null_draws, null_seeds)])
        null = null[np.isfinite(null)]
        shift = float(null.mean()) if design.null_centred else 0.0
        threshold = float(np.quantile(null, 1 - config.alpha, method="higher")) - shift
    keys = {"model": design.model, "diagnostic": design.diagnostic, "layer": design.layer}
    draws, curve = [], []
    strengths = list(config.strengths or check_strengths(design.strengths))
    extensions = 0
    while strengths:
        strength = strengths.pop(0)
        rows = []
        for j, (effect, p) in enumerate(
            _run_strength(design, strength, config.n_draws, grid_seeds.spawn(1)[0])
        ):
            pval, effect = (np.nan if p is None else float(p)), effect - shift
            detected = pval < config.alpha if design.own_test else effect > threshold
            rows.append({**keys, "strength": strength, "draw": j, "effect": effect, "p": pval})
            rows[-1]["detected"] = bool(detected and np.isfinite(effect))
        draws.extend(rows)
        curve.append({**keys, **_curve_row(strength, rows)})
        if not strengths and curve[-1]["power"] < config.target:
            if extensions < config.max_extensions:
                strengths.append(2 * strength)
                extensions += 1
    curve_table = pd.DataFrame(curve)
    mde, mde_strength, reached = minimum_detectable(curve_table, config.target)
    row = {
        **keys,
        "effect": design.effect,
        "mde": mde,
        "mde_strength": mde_strength,
        "reached": reached,
        "alpha": config.alpha,
        "target": config.target,
        "threshold": threshold,
        "null_shift": shift,
        "false_positive_rate": float(curve_table["power"].iloc[0]),
        "n_draws": config.n_draws,
        "unit": design.unit,
    }
    row["detail"] = mde_detail(design, config, row)
    tables = {"draws": pd.DataFrame(draws), "curve": curve_table, "mde": pd.DataFrame([row])}
    return PowerResult(tables, config)


def mde_detail(design: PlantedDesign, config: PowerConfig, row: dict) -> str:
    """One sentence on how an MDE was obtained (the claims page shows it beside the MDE)."""
    found = (
        f"{config.target:.0%} power at {design.effect} {row['mde']:.3g}"
        if row["reached"]
        else f"{config.target:.0%} power not reached; at least {row['mde']:.3g} "
        f"({design.effect}, the largest effect planted)"
    )
    return (
        f"{found}; planted {design.planted} in {design.model}'s layer {design.layer} "
        f"activations, {config.n_draws} draws at each strength; detected: {design.test} "
        f"(alpha {config.alpha}); no-effect draws detected in "
        f"{row['false_positive_rate']:.0%}"
    )
