"""What a diagnostic's claim carries beside its value (moralkit.diagnostics.evidence)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from moralkit.diagnostics.controls import ControlResult
from moralkit.diagnostics.evidence import (
    EVIDENCE_KEYS,
    Evidence,
    build_evidence,
    claim_margin,
    claim_value,
    evidence_table,
)
from moralkit.diagnostics.power import PowerResult
from moralkit.results import Gate

# the provisional margins of issue 18's split (tests only; claims.yaml is the source)
MARGIN = 0.1


def _power(mde: dict[str, tuple[float, bool]]) -> PowerResult:
    rows = [
        {"model": m, "diagnostic": "categorical", "mde": v, "reached": ok, "detail": f"d {m}"}
        for m, (v, ok) in mde.items()
    ]
    empty = pd.DataFrame()
    return PowerResult({"draws": empty, "curve": empty, "mde": pd.DataFrame(rows)})


def _control(detected: dict[str, bool]) -> ControlResult:
    rows = [
        {"model": m, "diagnostic": "categorical", "layer": 1, "name": "valence", "metric": "x",
         "value": 0.5, "ci_low": 0.2, "ci_high": 0.8, "p": 0.01, "detected": d, "n_records": 9,
         "detail": "det"}
        for m, d in detected.items()
    ]  # fmt: skip
    return ControlResult({"control": pd.DataFrame(rows)})


def test_evidence_fields_are_json_ready():
    fields = Evidence(ci_low=np.float64(0.123456), ci_high=np.nan, gates=(Gate("g", False, "x"),))
    out = fields.fields()
    assert set(out) == set(EVIDENCE_KEYS)
    assert out["ci_low"] == 0.1235 and out["ci_high"] is None and out["mde"] is None
    assert out["gates"] == [{"name": "g", "passed": False, "detail": "x"}]
    assert out["control"] is None


def test_build_evidence_reads_power_and_control_of_one_model():
    power = _power({"a": (0.05, True), "b": (0.7, False)})
    control = _control({"a": True, "b": False})
    a = build_evidence((0.0, 0.08), "a", "categorical", power, control).fields()
    assert a["mde"] == 0.05 and a["mde_detail"] == "d a" and a["gates"] == []
    assert a["control"]["detected"] is True and a["control"]["ci_low"] == 0.2
    b = build_evidence((0.0, 0.08), "b", "categorical", power, control).fields()
    assert b["gates"] == [{"name": "power_reached", "passed": False, "detail": "d b"}]
    assert b["control"]["detected"] is False
    none = build_evidence((0.0, 0.08), "c", "categorical", power, control).fields()
    assert none["mde"] is None and none["control"] is None
    with_gate = build_evidence(
        (0, 1), "a", "categorical", gates=[Gate("clustering_stable", 0, "u")]
    )
    assert with_gate.fields()["gates"][0]["passed"] is False


def test_claim_value_carries_the_interface_fields():
    control = {"name": "c", "value": 0.5, "detected": False, "ci_low": 0.1, "ci_high": 0.9}
    evidence = Evidence(0.1, 0.3, 0.05, "how", (Gate("g", True, "ok"),), control)
    claim = claim_value("categorical_indifference", 0.2, "n", {"per_model": {}}, evidence)
    recorded = claim.fields()  # what claims.json gets beside value and note
    assert set(EVIDENCE_KEYS) <= set(recorded) and "per_model" in recorded
    assert (recorded["ci_low"], recorded["ci_high"], recorded["mde"]) == (0.1, 0.3, 0.05)
    assert recorded["control"]["detected"] is False and recorded["gates"][0]["passed"] is True
    half = claim_value("gradient_indifference", 0.2, "n", {}, Evidence(0.1, float("nan")))
    assert half.ci_low is None and half.ci_high is None  # never half an interval


def test_evidence_table_says_what_the_sample_can_detect():
    verdicts = pd.DataFrame(
        {"model": ["a", "b"], "layer": [1, 2], "metric": "separation", "value": [0.0, 0.05],
         "ci_low": [-0.1, -0.2], "ci_high": [0.1, 0.3]}
    )  # fmt: skip
    table = evidence_table(
        verdicts, _power({"a": (0.05, True), "b": (0.7, False)}), _control({"a": 1, "b": 0}), MARGIN
    )
    rows = table.set_index("model")
    assert rows.loc["a", "reading"].startswith("MDE 0.05 <= margin 0.1")
    assert "control detected" in rows.loc["a", "reading"]
    assert "MDE at least 0.7 > margin 0.1" in rows.loc["b", "reading"]
    assert "control NOT detected" in rows.loc["b", "reading"]
    assert (rows["margin"] == MARGIN).all() and not rows.loc["b", "control_detected"]
    bare = evidence_table(verdicts)
    assert (bare["reading"] == "").all() and "mde" not in bare


def test_claim_margin_reads_claims_yaml():
    margin = claim_margin("categorical_indifference")
    assert margin is None or (isinstance(margin, float) and math.isfinite(margin))
    with pytest.raises(KeyError, match="no_such_claim"):
        claim_margin("no_such_claim")


def test_figures_draw_from_the_tables():
    import matplotlib.pyplot as plt

    from moralkit.figures.evidence import plot_control_beside_result, plot_power_curve

    curve = pd.DataFrame(
        {"model": "a", "strength": [0.0, 1.0, 2.0], "power": [0.05, 0.5, 1.0],
         "power_low": [0.0, 0.3, 0.9], "power_high": [0.2, 0.7, 1.0],
         "effect_mean": [0.0, 0.2, 0.5], "effect_sd": [0.1, 0.1, 0.05]}
    )  # fmt: skip
    mde = pd.DataFrame({"model": ["a"], "mde": [0.3], "target": [0.8], "alpha": [0.05]})
    plt.close(plot_power_curve(curve, mde, MARGIN, "separation"))
    plt.close(plot_power_curve(curve, mde))
    verdicts = pd.DataFrame(
        {"model": ["a"], "layer": [1], "metric": "x", "value": [0.0], "ci_low": [-0.1],
         "ci_high": [0.1]}
    )  # fmt: skip
    table = evidence_table(verdicts, None, _control({"a": False}), MARGIN)
    plt.close(plot_control_beside_result(table, "separation"))
    with pytest.raises(ValueError, match="control_value"):
        plot_control_beside_result(evidence_table(verdicts), "separation")
