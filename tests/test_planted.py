"""Planted-effect designs of the four diagnostics (moralkit.diagnostics.planted): each reproduces
its diagnostic, holds its level at zero effect and detects effects above its MDE."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from synthetic import make_activations, make_records

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.categorical import CategoricalConfig, opposed_cosines
from moralkit.diagnostics.dimensional import DimensionalConfig, dimensional_indifference
from moralkit.diagnostics.gradient import GradientConfig, gradient_indifference
from moralkit.diagnostics.planted import (
    FoldStats,
    categorical_design,
    dimensional_design,
    gradient_design,
    planted_pair_cosines,
    planted_power,
    ridge_planted_predictions,
    structural_design,
    unit_rows,
)
from moralkit.diagnostics.power import PowerConfig, power_analysis
from moralkit.diagnostics.structural import StructuralConfig
from moralkit.foundations import FOUNDATIONS


@pytest.fixture(scope="module")
def records():
    return make_records(n_per_stratum=6, n_prototypes=12, n_neutral=12, seed=3)


@pytest.fixture(scope="module")
def acts(records):
    # layer 0: no structure at all; the designs shuffle any structure away anyway
    return make_activations(records, {0: "none", 1: "opposed"}, n_model_layers=2, width=32, seed=4)


def _detection_rate(design, strength, n, seed, threshold=None):
    rng = np.random.default_rng(seed)
    hits = []
    for _ in range(n):
        effect, p = design.draw(strength * design.unit, rng)
        hits.append(p < 0.05 if threshold is None else effect > threshold)
    return float(np.mean(hits))


def test_planted_pair_cosines_equal_the_explicit_cosines():
    rng = np.random.default_rng(0)
    base, coef = rng.normal(size=(4, 10, 20)), rng.normal(size=(4, 10, 5))
    U = unit_rows(rng, 5, 20)
    explicit = opposed_cosines(base + 0.7 * coef @ U)
    fast = planted_pair_cosines(base, coef, base @ U.T, U @ U.T, 0.7)
    np.testing.assert_allclose(fast, explicit, atol=1e-12)


def test_categorical_zero_effect_at_alpha_and_effects_above_the_mde(records, acts):
    design = categorical_design(acts, records, 1, CategoricalConfig(n_permutations=99, seed=1))
    assert _detection_rate(design, 0.0, 300, seed=2) == pytest.approx(0.05, abs=0.035)
    result = power_analysis(design, PowerConfig(n_draws=40, seed=3))
    row = result.mde_row("synthetic")
    assert row["reached"] and row["mde"] > 0
    assert _detection_rate(design, 2 * row["mde_strength"], 100, seed=4) >= 0.85


def test_gradient_draw_at_zero_strength_is_the_diagnostic_on_shuffled_rows(records, acts):
    """With s = 0 a draw is exactly the paper variant's overall rho on rows shuffled within
    their foundation (the same random stream)."""
    design = gradient_design(acts, records, 1, GradientConfig())
    rho, p = design.draw(0.0, np.random.default_rng(7))
    assert p is None
    rng = np.random.default_rng(7)
    order = np.arange(len(records))
    foundation = records.table["foundation"].to_numpy()
    for f in FOUNDATIONS:
        group = np.flatnonzero(foundation == f)
        order[group] = rng.permutation(group)
    X = acts.get(1)[order]
    shuffled = ActivationSet.from_arrays({1: X}, n_model_layers=2)
    config = GradientConfig(variants="paper", n_bootstrap=0)
    table = gradient_indifference(shuffled, records, config)["by_layer"]
    expected = table[table["category"] == "overall"]["spearman"].iloc[0]
    assert rho == pytest.approx(expected, abs=1e-6)


def test_gradient_calibrated_detection(records, acts):
    design = gradient_design(acts, records, 1, GradientConfig())
    result = power_analysis(design, PowerConfig(n_draws=30, n_null_draws=100, seed=5))
    row = result.mde_row("synthetic")
    assert row["reached"]
    threshold = row["threshold"]
    assert _detection_rate(design, 0.0, 200, 6, threshold) == pytest.approx(0.05, abs=0.04)
    assert _detection_rate(design, 2 * row["mde_strength"], 60, 7, threshold) >= 0.85


def test_ridge_planted_predictions_equal_the_sklearn_pipeline():
    rng = np.random.default_rng(0)
    n, p, k = 150, 12, 3
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 40.0, p) + 9.0
    Y, Z, W = rng.normal(size=(n, k)), rng.normal(size=(n, k)), rng.normal(size=(k, p))
    split = list(KFold(5, shuffle=True, random_state=2).split(X))
    folds = [FoldStats(X - X.mean(axis=0), test) for _, test in split]
    for s in (0.0, 0.8):
        fast = ridge_planted_predictions(Y, Z, W, s, 2.5, folds)
        planted = X + s * Z @ W
        ref = np.empty_like(Y)
        for train, test in split:
            pipe = make_pipeline(StandardScaler(), Ridge(alpha=2.5)).fit(planted[train], Y[train])
            ref[test] = pipe.predict(planted[test])
        np.testing.assert_allclose(fast, ref, atol=1e-8)


def test_dimensional_design_detects_planted_signal(records, acts):
    config = DimensionalConfig(probes="ridge_cv", controls=())
    design = dimensional_design(acts, records, 0, config, alpha=10.0)
    result = power_analysis(design, PowerConfig(n_draws=10, n_null_draws=60, seed=1))
    row = result.mde_row("synthetic")
    assert row["reached"] and row["null_shift"] < 0.05
    curve = result["curve"]
    assert curve["effect_mean"].iloc[-1] > curve["effect_mean"].iloc[:3].max() + 0.05
    rate = _detection_rate(
        design, 2 * row["mde_strength"], 20, 3, row["threshold"] + row["null_shift"]
    )
    assert rate >= 0.85
    with pytest.raises(ValueError, match="alpha"):
        dimensional_design(acts, records, 0, config, alpha=0.0)


def test_structural_design_zero_and_strong_effects(records, acts):
    config = StructuralConfig(min_cluster_size=5, min_samples=2, scale_with_n=False)
    design = structural_design(acts, records, 0, config, n_label_permutations=49)
    assert _detection_rate(design, 0.0, 20, seed=1) <= 0.2
    ari, p = design.draw(4.0 * design.unit, np.random.default_rng(2))
    assert ari > 0.5 and p < 0.05


def test_planted_power_runs_every_model_at_its_verdict_layer(records, acts):
    twin = dataclasses.replace(acts, model_id="other")
    config = DimensionalConfig(probes="ridge_cv", controls=(), n_bootstrap=50)
    result = dimensional_indifference(acts, records, config)
    result = type(result).concat([result, dimensional_indifference(twin, records, config)])
    power = planted_power(
        "dimensional", {"synthetic": acts, "other": twin}, records, result, config,
        PowerConfig(n_draws=4, n_null_draws=10),
    )  # fmt: skip
    layers = result.verdict_layers()
    assert dict(zip(power["mde"]["model"], power["mde"]["layer"], strict=True)) == layers
    with pytest.raises(ValueError, match="no activations"):
        planted_power("dimensional", {"synthetic": acts}, records, result, config)
    with pytest.raises(ValueError, match="unknown diagnostic"):
        planted_power("nope", {"synthetic": acts, "other": twin}, records, result, config)
