"""Every analysis result closes the XConfig -> XResult contract: best() works and claim() either
records claims or the result says why not; result claims on hand-built tables."""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pandas as pd
import pytest

import moralkit
from moralkit.claims import AGREES, DISAGREES, INCONCLUSIVE, judge_claim, load_claims
from moralkit.pruning.results import ORGAD, UNPRUNED, WEI, HarmfulWeightsResult
from moralkit.results import AnalysisResult


def _all_results() -> list[type[AnalysisResult]]:
    for info in pkgutil.walk_packages(moralkit.__path__, "moralkit."):
        importlib.import_module(info.name)
    found, todo = [], [AnalysisResult]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("moralkit."):
                found.append(sub)
    return found


RESULTS = _all_results()


def test_the_known_results_are_all_found():
    names = {r.__name__ for r in RESULTS}
    assert {
        "BehaviourResult",
        "PrunedDiagnosticsResult",
        "StrongRejectResult",
        "PairwiseResult",
        "RubricResult",
        "ReplicationResult",
        "RediagnosisResult",
        "HarmfulWeightsResult",
        "AcrossModelsResult",
    } <= names


def _defines(result: type, name: str) -> bool:
    return any(name in vars(c) for c in result.__mro__ if c is not AnalysisResult)


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.__name__)
def test_every_result_reports_a_claim_or_says_why_not(result):
    if result.NO_CLAIM:
        assert not _defines(result, "claim"), f"{result.__name__}: claim() and NO_CLAIM both"
        assert len(result.NO_CLAIM.split()) >= 8  # a reason, not a label
    else:
        assert _defines(result, "claim"), f"{result.__name__}: no claim() and no NO_CLAIM"


@pytest.mark.parametrize("result", RESULTS, ids=lambda r: r.__name__)
def test_every_result_has_a_best(result):
    assert _defines(result, "best") or result.BEST_TABLE, f"{result.__name__}.best() would raise"
    if result.BEST_TABLE:
        assert result.BEST_TABLE in result.TABLES and result.BEST_COLUMN


def _harmful(perplexity: dict[tuple[str, str], tuple[float, float, float]]) -> HarmfulWeightsResult:
    """A pruning result with one model: effects for both directions and a perplexity table."""
    effects = pd.DataFrame(
        [
            ("m", d, c, asr, margin, 10.0 * ppl, 0.0 if c == UNPRUNED else 5e-4)
            for d in (ORGAD, WEI)
            for c, asr, margin, ppl in ((UNPRUNED, 0.8, 2.0, 1.0), ("pruned", 0.2, -1.0, 1.05))
        ],
        columns=[
            "model",
            "direction",
            "condition",
            "asr",
            "compliance_margin",
            "perplexity",
            "fraction_pruned",
        ],
    ).assign(margin_drop=np.nan)
    utility = pd.DataFrame(
        [
            ("m", d, c, "neutral text", "perplexity", v, lo, hi)
            for (d, c), (v, lo, hi) in perplexity.items()
        ],
        columns=[
            "model",
            "direction",
            "condition",
            "measure",
            "metric",
            "value",
            "ci_low",
            "ci_high",
        ],
    )
    # the unity between chance (0) and the random-group ceiling (1), over prompt resamples
    summary = pd.DataFrame(
        {
            "model": ["m"],
            "position_harm": [0.9],
            "position_benign": [0.3],
            "gap": [0.6],
            "gap_ci_low": [0.4],
            "gap_ci_high": [0.8],
            "ceiling_above_chance": [0.2],
            "ceiling_ci_low": [0.1],
            "ceiling_ci_high": [0.3],
            "fidelity": [1.0],
            "certified": [0.97],
        }
    )
    # the headline mask against ten random masks: 1.5 nats more margin drop, [1.0, 2.0]
    control = pd.DataFrame(
        {
            "model": "m",
            "direction": ORGAD,
            "measure": ["compliance_margin"],
            "targeted_effect": [-3.0],
            "random_mean": [-1.5],
            "percentile": [0.0],
            "n_random": [10],
            "excess_drop": [1.5],
            "excess_ci_low": [1.0],
            "excess_ci_high": [2.0],
        }
    )
    phrasings = pd.DataFrame(
        {"model": "m", "side": ["affirmative"] * 3 + ["refusal"] * 3, "held_out": True}
    )
    empty = pd.DataFrame()
    tables = {"effects": effects, "compactness": empty, "utility": utility}
    tables |= {"random_masks": empty, "random_control": control, "margins": empty}
    tables |= {"unity": empty, "unity_pairs": empty, "unity_summary": summary}
    tables |= {"phrasings": phrasings, "by_module": empty, "answers": empty, "generations": empty}
    return HarmfulWeightsResult(tables)


def _judge(claim) -> str:
    return judge_claim(
        load_claims()[claim.claim_id], {"value": claim.value, **claim.fields()}
    ).verdict


def test_harmful_weights_claims_on_known_tables():
    kept = {("none", UNPRUNED): (10.0, 9.8, 10.2), (ORGAD, "pruned"): (10.3, 10.1, 10.5)}
    claims = {c.claim_id: c for c in _harmful(kept).claim()}
    compact = claims["harmful_weights_compact"]
    assert compact.value == 1.5  # the drop beyond the random masks' (3.0 - 1.5)
    assert (compact.ci_low, compact.ci_high) == (1.0, 2.0)
    assert all(g.passed for g in compact.gates)  # 10 random masks, 3 held-out phrasings per side
    assert compact.extra["margin_drop"] == {"m": 3.0}  # margin 2.0 -> -1.0
    assert compact.extra["asr_drop"] == {"m": 0.6}
    unified = claims["harmful_weights_unified"]
    assert unified.value == 0.6 and (unified.ci_low, unified.ci_high) == (0.4, 0.8)
    assert unified.control.detected and all(g.passed for g in unified.gates)
    utility = claims["harmful_weights_utility_kept"]
    assert utility.value == pytest.approx(0.03)
    assert utility.ci_low == pytest.approx(10.1 / 10.2 - 1)
    assert utility.ci_high == pytest.approx(10.5 / 9.8 - 1)
    assert _judge(utility) == AGREES  # at most 7% more perplexity: within 10%
    worse = {("none", UNPRUNED): (10.0, 9.8, 10.2), (ORGAD, "pruned"): (13.0, 12.5, 13.5)}
    assert _judge(_harmful(worse).claim()[1]) == DISAGREES  # at least 22% more
    unsure = {("none", UNPRUNED): (10.0, 9.5, 10.5), (ORGAD, "pruned"): (10.8, 10.2, 11.4)}
    assert _judge(_harmful(unsure).claim()[1]) == INCONCLUSIVE  # [-3%, +20%]
