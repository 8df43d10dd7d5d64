"""The planted-effect power engine (moralkit.diagnostics.power) on designs with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from moralkit.diagnostics.power import (
    PlantedDesign,
    PowerConfig,
    minimum_detectable,
    power_analysis,
    wilson_interval,
)

N = 25  # observations per draw of the toy design


def _z_test_design(own_test: bool = True, unit: float = 1.0) -> PlantedDesign:
    """A one-sample mean of N standard normals shifted by the strength: effect = mean, test =
    one-sided z-test. Its true power is known: 1 - Phi(z_0.95 - s sqrt(N))."""

    def draw(strength: float, rng: np.random.Generator) -> tuple[float, float | None]:
        mean = float(rng.normal(strength, 1.0, N).mean())
        p = float(stats.norm.sf(mean * np.sqrt(N))) if own_test else None
        return mean, p

    return PlantedDesign(
        "toy", "toy-model", 0, "mean", "a shift", "z-test", unit, own_test, draw,
        strengths=(0.0, 0.2, 0.4, 0.6, 0.8),
    )  # fmt: skip


def _true_mde() -> float:
    # the shift detected with 80% power by a one-sided z-test at alpha 0.05
    return (stats.norm.ppf(0.95) + stats.norm.ppf(0.8)) / np.sqrt(N)


def test_mde_of_a_z_test_matches_its_textbook_value():
    result = power_analysis(_z_test_design(), PowerConfig(n_draws=400, seed=1))
    row = result.mde_row("toy-model")
    assert row["reached"]
    assert row["mde"] == pytest.approx(_true_mde(), abs=0.05)  # 0.497
    assert row["false_positive_rate"] == pytest.approx(0.05, abs=0.035)
    assert set(result.tables) == {"draws", "curve", "mde"}
    assert len(result["draws"]) == 5 * 400


def test_effects_above_the_mde_are_detected_and_zero_effects_at_alpha():
    design = _z_test_design()
    result = power_analysis(design, PowerConfig(n_draws=100, seed=2))
    strength = 1.5 * result.mde_row("toy-model")["mde_strength"]
    rng = np.random.default_rng(3)
    above = [design.draw(strength, rng)[1] < 0.05 for _ in range(300)]
    zero = [design.draw(0.0, rng)[1] < 0.05 for _ in range(1000)]
    assert np.mean(above) > 0.9
    assert np.mean(zero) == pytest.approx(0.05, abs=0.02)


def test_calibrated_threshold_holds_its_level_on_fresh_null_draws():
    """Without its own test a design is judged against the 95th percentile of no-effect draws;
    fresh no-effect draws then exceed it in about 5% of cases."""
    design = _z_test_design(own_test=False)
    result = power_analysis(design, PowerConfig(n_draws=200, n_null_draws=400, seed=4))
    row = result.mde_row("toy-model")
    assert np.isnan(result["draws"]["p"]).all()
    rng = np.random.default_rng(5)
    fresh = np.array([design.draw(0.0, rng)[0] for _ in range(2000)])
    assert np.mean(fresh > row["threshold"]) == pytest.approx(0.05, abs=0.02)
    assert row["mde"] == pytest.approx(_true_mde(), abs=0.07)


def test_null_centred_designs_report_effects_above_the_no_effect_mean():
    base = _z_test_design(own_test=False)

    def biased(strength, rng):
        effect, _ = base.draw(strength, rng)
        return effect - 0.3, None  # a surrogate biased where the claim's statistic is not

    design = PlantedDesign(**{**base.__dict__, "draw": biased, "null_centred": True})
    result = power_analysis(design, PowerConfig(n_draws=200, n_null_draws=200, seed=6))
    row = result.mde_row("toy-model")
    assert row["null_shift"] == pytest.approx(-0.3, abs=0.03)
    assert row["mde"] == pytest.approx(_true_mde(), abs=0.07)


def test_strengths_are_doubled_until_the_target_is_reached():
    design = _z_test_design(unit=0.1)  # strengths 0..0.08: far too weak
    result = power_analysis(design, PowerConfig(n_draws=60, max_extensions=4, seed=7))
    strengths = result["curve"]["strength"].tolist()
    # a shift of 0.64 (strength 6.4 x unit 0.1) has 94% power: doubling stops there
    assert strengths == [0.0, 0.2, 0.4, 0.6, 0.8, 1.6, 3.2, 6.4]
    assert result.mde_row("toy-model")["reached"]


def test_an_unreached_target_is_a_lower_bound():
    design = _z_test_design(unit=0.01)
    result = power_analysis(design, PowerConfig(n_draws=30, max_extensions=1, seed=8))
    row = result.mde_row("toy-model")
    assert not row["reached"]
    assert row["mde"] == pytest.approx(result["curve"]["effect_mean"].iloc[-1])
    assert "not reached" in row["detail"] and "at least" in row["detail"]


def test_minimum_detectable_interpolates_on_the_isotonic_curve():
    curve = pd.DataFrame(
        {
            "strength": [0.0, 1.0, 2.0, 3.0],
            "power": [0.05, 0.6, 0.5, 1.0],  # a dip from sampling noise
            "n_draws": [10, 10, 10, 10],
            "effect_mean": [0.0, 0.2, 0.4, 0.6],
        }
    )
    mde, strength, reached = minimum_detectable(curve, 0.8)
    # isotonic fit: 0.05, 0.55, 0.55, 1.0 -> 0.8 crossed between strengths 2 and 3
    assert reached and strength == pytest.approx(2 + 0.25 / 0.45)
    assert mde == pytest.approx(0.4 + 0.2 * 0.25 / 0.45)
    assert minimum_detectable(curve.assign(power=0.1), 0.8) == (0.6, 3.0, False)


def test_wilson_interval_and_bad_configs():
    low, high = wilson_interval(0, 20)
    assert low == 0 and 0.1 < high < 0.2
    with pytest.raises(ValueError, match="strengths"):
        PowerConfig(strengths=(0.5, 1.0))
    with pytest.raises(ValueError, match="n_draws"):
        PowerConfig(n_draws=1)
    with pytest.raises(ValueError, match="alpha"):
        PowerConfig(alpha=1.5)
    assert PowerConfig(n_draws=10).n_null_draws == 40
    assert PowerConfig(n_draws=30).n_null_draws == 60
