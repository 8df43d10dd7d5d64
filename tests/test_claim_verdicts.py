"""Every claim of claims.yaml can come out every way: agrees, disagrees, inconclusive.

For each claim the measurements are built from its own check (the accepted region is derived
here, independently of moralkit.claims.region) on each side of it, and the verdict asserted.
The margins themselves are not pinned: claims.yaml says they are set before any run, and its
git history shows when.
"""

from __future__ import annotations

import math

import pytest

from moralkit.claims import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    NOT_CHECKABLE,
    NOT_RUN,
    VERDICT_COLOURS,
    VERDICTS,
    Claim,
    judge_claim,
    load_claims,
)
from moralkit.results import ClaimValue, Control, Gate

CLAIMS = load_claims()
NUMERIC = ("approx", "at_most", "at_least", "equivalence")


def accepted(check: dict) -> tuple[float, float]:
    """The accepted region, written out from the YAML's documented meaning."""
    op = check["op"]
    if op == "equivalence":
        m = check["margin"]
        return {"upper": (-math.inf, m), "lower": (-m, math.inf), "two_sided": (-m, m)}[
            check["side"]
        ]
    t, tol = check["target"], check.get("tolerance", 0)
    tol = tol * abs(t) if check.get("relative") else tol
    if op == "approx":
        return t - tol, t + tol
    return (-math.inf, t + tol) if op == "at_most" else (t - tol, math.inf)


def step(lo: float, hi: float) -> float:
    """A distance that is small next to the region and to its edges' magnitude."""
    edge = hi if math.isfinite(hi) else lo
    width = hi - lo if math.isfinite(hi - lo) else math.inf
    return min(max(abs(edge) * 0.2, 0.02), width / 4 if width > 0 else 1.0)


def base(claim: Claim) -> dict:
    return {key: allowed[0] for key, allowed in claim.requires.items()}


def interval(claim: Claim, low: float, high: float, **evidence) -> dict:
    fname = claim.check.get("field", "value")
    m = {**base(claim), "value": (low + high) / 2, fname: (low + high) / 2}
    m.update(ci_low=low, ci_high=high, **evidence)
    return m


def cases(claim: Claim) -> list[tuple[str, dict, str]]:
    """(label, measurement, expected verdict) on each side of the claim's check."""
    check = claim.check
    lo, hi = accepted(check)
    d = step(lo, hi)
    inside = (lo + d, hi - d) if math.isfinite(lo) and math.isfinite(hi) else None
    if inside and hi == lo:  # an exact count: only a zero-width interval lies inside
        inside = (lo, hi)
    if inside is None:
        inside = (hi - 2 * d, hi - d) if math.isfinite(hi) else (lo + d, lo + 2 * d)
    power = {}
    if check["op"] == "equivalence":
        power = {"mde": check["margin"] / 2, "control": Control("c", 1.0, True).as_dict()}
    out = [("inside", interval(claim, *inside, **power), AGREES)]
    if math.isfinite(hi):
        out += [
            ("above", interval(claim, hi + d, hi + 2 * d, **power), DISAGREES),
            ("straddles upper edge", interval(claim, hi - d, hi + d, **power), INCONCLUSIVE),
        ]
    if math.isfinite(lo):
        out += [
            ("below", interval(claim, lo - 2 * d, lo - d, **power), DISAGREES),
            ("straddles lower edge", interval(claim, lo - d, lo + d, **power), INCONCLUSIVE),
        ]
    gate = [Gate("precondition", False, "not met").as_dict()]
    out.append(("failed gate", interval(claim, *inside, **power, gates=gate), INCONCLUSIVE))
    if check["op"] == "equivalence":
        weak = {**power, "mde": check["margin"] * 2}
        out.append(("MDE above margin", interval(claim, *inside, **weak), INCONCLUSIVE))
        blind = {**power, "control": Control("c", 0.0, False, detail="missed").as_dict()}
        out.append(("control missed", interval(claim, *inside, **blind), INCONCLUSIVE))
        out.append(("no MDE or control", interval(claim, *inside), AGREES))
    if check.get("exact"):
        fname = check.get("field", "value")
        mid = (lo + hi) / 2 if math.isfinite(lo + hi) else inside[0]
        out.append(("exact value inside", {**base(claim), fname: mid}, AGREES))
        far = hi + d if math.isfinite(hi) else lo - d
        out.append(("exact value outside", {**base(claim), fname: far}, DISAGREES))
    else:
        point = {**base(claim), claim.check.get("field", "value"): inside[0]}
        out.append(("point estimate only", point, INCONCLUSIVE))
    return out


def cell_cases(claim: Claim) -> list[tuple[str, dict, str]]:
    """A claim judged over cells: every cell built like a measurement of the base check."""
    plain = Claim(claim.claim_id, "", "", "", {k: v for k, v in claim.check.items() if k != "over"})
    by = {}
    for _label, m, verdict in cases(plain):
        by.setdefault(verdict, m)
    agree, disagree, open_ = by[AGREES], by[DISAGREES], by[INCONCLUSIVE]
    return [
        ("every cell agrees", {"value": 2, "cells": {"a": agree, "b": agree}}, AGREES),
        ("one cell disagrees", {"value": 1, "cells": {"a": agree, "b": disagree}}, DISAGREES),
        ("one cell open", {"value": 1, "cells": {"a": agree, "b": open_}}, INCONCLUSIVE),
        ("open and disagree", {"value": 0, "cells": {"a": open_, "b": disagree}}, DISAGREES),
        ("no cells", {"value": 0, "cells": {}}, NOT_CHECKABLE),
    ]


def truth_cases(claim: Claim) -> list[tuple[str, dict, str]]:
    fname = claim.check.get("field", "value")
    yes, no = (AGREES, DISAGREES) if claim.check["op"] == "is_true" else (DISAGREES, AGREES)
    gate = [Gate("precondition", False, "not met").as_dict()]
    return [
        ("true", {**base(claim), fname: True}, yes),
        ("false", {**base(claim), fname: False}, no),
        ("failed gate", {**base(claim), fname: True, "gates": gate}, INCONCLUSIVE),
        ("not recorded", {**base(claim), "other": 1}, NOT_CHECKABLE),
    ]


def all_cases(claim: Claim) -> list[tuple[str, dict, str]]:
    op = claim.check["op"]
    if op == "none":
        return [("any value", {**base(claim), "value": 1.0}, NOT_CHECKABLE)]
    if claim.check.get("over") == "cells":
        return cell_cases(claim)
    return truth_cases(claim) if op in ("is_true", "is_false") else cases(claim)


@pytest.mark.parametrize("claim_id", list(CLAIMS))
def test_every_claim_is_judged_on_each_side_of_its_check(claim_id):
    claim = CLAIMS[claim_id]
    assert judge_claim(claim, None).verdict == NOT_RUN
    seen = set()
    for label, measurement, expected in all_cases(claim):
        got = judge_claim(claim, measurement)
        assert got.verdict == expected, f"{claim_id} / {label}: {got}"
        if got.verdict == INCONCLUSIVE:
            assert got.reason, f"{claim_id} / {label}: inconclusive without a reason"
        seen.add(got.verdict)
    if claim.check["op"] == "none":
        assert judge_claim(claim, {**base(claim), "value": 1}).reason  # says why it is not judged
    else:
        assert {AGREES, DISAGREES, INCONCLUSIVE} <= seen, claim_id
    if claim.requires:
        other = {**all_cases(claim)[0][1], **{k: "something else" for k in claim.requires}}
        assert judge_claim(claim, other).verdict == NOT_CHECKABLE


def test_every_judged_claim_of_no_effect_states_its_margin_and_why():
    for claim_id in (
        "categorical_indifference",
        "gradient_indifference",
        "structural_indifference",
        "dimensional_indifference",
        "scale_no_effect",
        "alignment_no_effect",
        "harmful_weights_utility_kept",
        *(f"replication_{d}" for d in ("categorical", "gradient", "structural", "dimensional")),
    ):
        check = CLAIMS[claim_id].check
        assert check["op"] == "equivalence", claim_id
        assert check["margin"] > 0 and len(check["why"].split()) >= 8, claim_id


def test_replication_uses_the_indifference_margins():
    for d in ("categorical", "gradient", "structural", "dimensional"):
        rep = {k: v for k, v in CLAIMS[f"replication_{d}"].check.items() if k != "over"}
        assert rep == CLAIMS[f"{d}_indifference"].check


def test_categorical_is_one_sided_towards_indifference():
    """A cosine above the null (negative separation: closer than chance) agrees."""
    claim = CLAIMS["categorical_indifference"]
    closer = {"separation": -0.3, "ci_low": -0.4, "ci_high": -0.2, "value": 0.9}
    assert judge_claim(claim, closer).verdict == AGREES
    apart = {"separation": 0.5, "ci_low": 0.4, "ci_high": 0.6, "value": -0.5}
    assert judge_claim(claim, apart).verdict == DISAGREES


def test_is_false_disagrees_when_true():
    claim = Claim("c", "", "", "", {"op": "is_false", "field": "flag"})
    assert judge_claim(claim, {"flag": True}).verdict == DISAGREES
    assert judge_claim(claim, {"flag": False}).verdict == AGREES


def test_a_failed_gate_names_its_detail_and_passed_gates_do_not_block():
    claim = CLAIMS["structural_indifference"]
    m = {"value": 0.02, "ci_low": 0.0, "ci_high": 0.05, "mde": 0.05}
    passed = [Gate("clustering_stable", True, "ARI 0.95").as_dict()]
    assert judge_claim(claim, {**m, "gates": passed}).verdict == AGREES
    failed = [*passed, Gate("sae_reconstruction", False, "explained variance 0.19").as_dict()]
    got = judge_claim(claim, {**m, "gates": failed})
    assert got.verdict == INCONCLUSIVE and "explained variance 0.19" in got.reason
    assert "sae_reconstruction" in got.evidence


def test_mde_and_control_only_hold_back_an_agreement():
    """A detected effect (interval beyond the margin) needs no power to disagree."""
    claim = CLAIMS["structural_indifference"]
    miss = Control("ethics", 0.01, False, detail="ARI 0.01").as_dict()
    got = judge_claim(claim, {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "mde": 0.9})
    assert got.verdict == DISAGREES and "MDE 0.9" in got.evidence
    got = judge_claim(claim, {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "control": miss})
    assert got.verdict == DISAGREES
    got = judge_claim(claim, {"value": 0.0, "ci_low": -0.01, "ci_high": 0.02, "control": miss})
    assert got.verdict == INCONCLUSIVE and "positive control" in got.reason


def test_reversed_interval_is_not_judged():
    claim = CLAIMS["structural_indifference"]
    assert judge_claim(claim, {"value": 0, "ci_low": 0.05, "ci_high": 0.0}).verdict == (
        NOT_CHECKABLE
    )


def test_claim_value_fields_are_the_claims_json_keys():
    value = ClaimValue(
        "structural_indifference",
        0.02,
        extra={"per_model": {"m": 0.02}, "mde": 99.0},
        ci_low=0.0,
        ci_high=0.05,
        mde=0.04,
        mde_detail="planted",
        gates=[{"name": "g", "passed": True, "detail": "ok"}],
        control={"name": "c", "value": 0.4, "detected": True},
    )
    fields = value.fields()
    assert fields["mde"] == 0.04  # the typed field wins over extra
    assert fields["gates"] == [{"name": "g", "passed": True, "detail": "ok"}]
    assert fields["control"]["detected"] is True and fields["control"]["ci_low"] is None
    assert fields["per_model"] == {"m": 0.02}
    measurement = {"value": value.value, **fields}
    assert judge_claim(CLAIMS["structural_indifference"], measurement).verdict == AGREES
    assert "mde" not in ClaimValue("x", 1).fields()
    with pytest.raises(ValueError, match="both ci_low and ci_high"):
        ClaimValue("x", 1, ci_low=0.1)


def test_every_verdict_has_a_colour():
    assert set(VERDICT_COLOURS) == set(VERDICTS)
    assert len(set(VERDICT_COLOURS.values())) == len(VERDICTS)


def test_bad_equivalence_checks_are_refused(tmp_path):
    for body, message in (
        ("{op: equivalence, side: upper, why: w}", "margin"),
        ("{op: equivalence, margin: 0.1, side: up, why: w}", "side"),
        ("{op: equivalence, margin: 0.1, side: upper}", "why"),
        ("{op: at_most}", "target"),
    ):
        path = tmp_path / f"claims-{message}.yaml"  # load_claims caches by path
        path.write_text(f"x:\n  claim: c\n  check: {body}\n")
        with pytest.raises(ValueError, match=message):
            load_claims(path)
