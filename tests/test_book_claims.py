"""Claims (moralkit/claims.yaml) and the verdict logic of the claims page."""

from __future__ import annotations

import json

import pytest

from moralkit.claims import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    NOT_CHECKABLE,
    NOT_RUN,
    Claim,
    claims_table,
    format_value,
    judge_claim,
    load_claims,
    read_measurements,
)


def claim(op, target=None, tolerance=0.0, requires=None, **check):
    spec = {"op": op, **check}
    if target is not None:
        spec.update(target=target, tolerance=tolerance)
    return Claim("c", "a claim", "1", "02", spec, requires or {})


def test_shipped_claims_cover_the_spec_ids():
    claims = load_claims()
    for claim_id in (
        "expanded_records",
        "diagnostic_subset",
        "n_models",
        "categorical_indifference",
        "gradient_indifference",
        "structural_indifference",
        "best_probe_r2",
        "scale_no_effect",
        "alignment_no_effect",
        "flames_win_rate",
        "flames_psc1",
        "flames_psc2",
    ):
        assert claim_id in claims
    assert claims["best_probe_r2"].check["target"] == 0.26
    assert claims["best_probe_r2"].check["op"] == "approx"  # two-sided: a broken probe fails
    assert claims["diagnostic_subset"].check["target"] == 16315


def test_unknown_operator_is_rejected(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text("x:\n  claim: c\n  check: {op: roughly}\n")
    with pytest.raises(ValueError, match="unknown check op 'roughly'"):
        load_claims(path)


@pytest.mark.parametrize(
    ("value", "expected"), [(16315, AGREES), (16316, DISAGREES), (16314.0, DISAGREES)]
)
def test_exact_count(value, expected):
    assert judge_claim(claim("approx", 16315, exact=True), {"value": value}).verdict == expected


def test_relative_tolerance():
    c = claim("approx", 251000, tolerance=0.002, relative=True, exact=True)  # ±502
    assert judge_claim(c, {"value": 251400}).verdict == AGREES
    assert judge_claim(c, {"value": 250400}).verdict == DISAGREES


def ci(low, high, value=None):
    return {"value": (low + high) / 2 if value is None else value, "ci_low": low, "ci_high": high}


def test_at_most_and_at_least_include_tolerance_and_judge_the_interval():
    c = claim("at_most", 0.26, tolerance=0.05)
    assert judge_claim(c, ci(0.2, 0.31)).verdict == AGREES
    assert judge_claim(c, ci(0.32, 0.4)).verdict == DISAGREES
    assert judge_claim(c, ci(0.3, 0.32)).verdict == INCONCLUSIVE
    c = claim("at_least", 0.5, tolerance=0.1)
    assert judge_claim(c, ci(0.4, 0.6)).verdict == AGREES
    assert judge_claim(c, ci(0.2, 0.39)).verdict == DISAGREES
    assert judge_claim(c, ci(0.38, 0.41)).verdict == INCONCLUSIVE


def test_an_estimate_without_interval_is_never_judged_on_its_point():
    got = judge_claim(claim("at_most", 0.5), {"value": 0.1})
    assert got.verdict == INCONCLUSIVE and "no interval recorded" in got.reason


def test_approx_is_two_sided_on_the_interval():
    c = claim("approx", 0.26, tolerance=0.05)
    assert judge_claim(c, ci(0.23, 0.29)).verdict == AGREES
    assert judge_claim(c, ci(-3.2, -2.8)).verdict == DISAGREES  # a broken probe
    assert judge_claim(c, ci(0.4, 0.5)).verdict == DISAGREES
    assert judge_claim(c, ci(0.18, 0.25)).verdict == INCONCLUSIVE


def test_truth_values_and_fields():
    c = claim("is_true", field="inside_null_band")
    assert judge_claim(c, {"value": 0.9, "inside_null_band": True}).verdict == AGREES
    assert judge_claim(c, {"value": 0.9, "inside_null_band": False}).verdict == DISAGREES
    missing = judge_claim(c, {"value": 0.9})
    assert missing.verdict == NOT_CHECKABLE and "inside_null_band" in missing.reason
    assert judge_claim(claim("is_false"), {"value": False}).verdict == AGREES


def test_requirements_make_a_claim_not_checkable():
    requires = {"ground_truth": ["socialchem"], "sample_scale": [1.0]}
    c = claim("approx", 16315, requires=requires, exact=True)
    ok = {"value": 16315, "ground_truth": "socialchem", "sample_scale": 1}
    assert judge_claim(c, ok).verdict == AGREES
    other = judge_claim(c, {**ok, "ground_truth": "moralstrength"})
    assert other.verdict == NOT_CHECKABLE
    assert "ground_truth = socialchem" in other.reason and "moralstrength" in other.reason
    assert judge_claim(c, {**ok, "sample_scale": 0.15}).verdict == NOT_CHECKABLE


def test_missing_and_unusable_values():
    assert judge_claim(claim("approx", 1), None).verdict == NOT_RUN
    assert judge_claim(claim("approx", 1), {"value": float("nan")}).verdict == NOT_CHECKABLE
    assert judge_claim(claim("approx", 1), {"value": "many"}).verdict == NOT_CHECKABLE
    assert judge_claim(claim("none"), {"value": 3}).verdict == NOT_CHECKABLE


def test_claims_table_from_chapter_files(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "claims.json").write_text(
        json.dumps(
            {
                "best_probe_r2": {
                    "value": 0.25,
                    "ci_low": 0.22,
                    "ci_high": 0.28,
                    "chapter": "05_dim",
                    "profile": "paper",
                    "ground_truth": "socialchem",
                    "note": "L7",
                },
                "dimensional_indifference": {
                    "value": 0.7,
                    "ci_low": 0.62,
                    "ci_high": 0.75,
                    "chapter": "05_dim",
                    "profile": "quick",
                    "ground_truth": "moralstrength",
                },
                "diagnostic_subset": {
                    "value": 2800,
                    "chapter": "01_data",
                    "profile": "quick",
                    "ground_truth": "moralstrength",
                    "sample_scale": 1.0,
                },
            }
        )
    )
    table = claims_table(read_measurements([tmp_path / "a" / "claims.json", tmp_path / "nope"]))
    rows = table.set_index("claim_id")
    assert rows.loc["best_probe_r2", "verdict"] == AGREES
    assert rows.loc["best_probe_r2", "measured"] == "0.25"
    assert "[0.22, 0.28]" in rows.loc["best_probe_r2", "evidence"]
    assert "L7" in rows.loc["best_probe_r2", "why"]
    assert rows.loc["dimensional_indifference", "verdict"] == DISAGREES  # [0.62, 0.75] > 0.5
    assert rows.loc["diagnostic_subset", "verdict"] == NOT_CHECKABLE
    assert rows.loc["diagnostic_subset", "measured"] == "2,800"
    assert rows.loc["flames_psc1", "verdict"] == NOT_RUN
    assert "LLM judge" in rows.loc["flames_psc1", "why"]  # the claim's `unmeasured` reason
    assert list(table.columns) == [
        "claim_id",
        "claim",
        "paper_value",
        "chapter",
        "measured",
        "profile",
        "verdict",
        "why",
        "evidence",
    ]


@pytest.mark.parametrize(
    ("value", "text"), [(251234, "251,234"), (0.2567, "0.257"), (True, "True"), ("x", "x")]
)
def test_format_value(value, text):
    assert format_value(value) == text
