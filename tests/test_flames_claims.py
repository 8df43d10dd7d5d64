"""The Flames claims from hand-built judge tables: paper-protocol win-rate, fixed-protocol rate
beside it, and the paired rise of perfect scores with McNemar's test (no model, no judge)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moralkit.claims import AGREES, DISAGREES, judge_claim, load_claims
from moralkit.evaluation.flames import FlamesEvaluation, psc_rise, single_order_rates
from moralkit.evaluation.judge import JudgeConfig, JudgeProtocol, PairwiseResult, RubricResult
from moralkit.steering import SteeringConfig

BASE = SteeringConfig(stage="none").label
CONFIG = JudgeConfig(n_bootstrap=1000, seed=0)


def pairs_for(arm: str, verdicts: list[str | None]) -> pd.DataFrame:
    """Order-1 verdicts (None: a failed call) and order-2 verdicts that always disagree."""
    return pd.DataFrame(
        {
            "id": [f"{arm}|p{i}" for i in range(len(verdicts))],
            "arm": arm,
            "outcome": "tie",
            "verdict_ab": verdicts,
            "status_ab": ["ok" if v else "error: timeout" for v in verdicts],
            "verdict_ba": "tie",
            "status_ba": "ok",
        }
    )


def scores_for(arm: str, safety: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"{arm}|p{i}" for i in range(len(safety))],
            "arm": arm,
            "rubric": "safety",
            "score": safety,
            "status": "ok",
        }
    )


@pytest.fixture()
def run() -> FlamesEvaluation:
    pairs = pd.concat(
        [
            pairs_for("finetuned L1", ["win"] * 7 + ["lose"] * 2 + [None]),  # paper rate 0.7
            pairs_for("finetuned L2", ["win"] * 4 + ["tie"] * 6),  # 0.4
            pairs_for("pretrained L1", ["win"] * 10),  # a control arm, not claimed
        ],
        ignore_index=True,
    )
    summary = pd.DataFrame(
        {"arm": ["finetuned L1", "finetuned L2", "pretrained L1"], "win_rate": [0.5, 0.3, 0.9]}
    )
    base = [3, 3, 3, 3, 3, 1, 1, 1, 2, 2]
    steered = [3, 3, 3, 3, 3, 3, 3, 3, 2, np.nan]  # p9 unscored: dropped from both arms
    scores = pd.concat(
        [scores_for(BASE, base), scores_for("finetuned L1", steered)], ignore_index=True
    )
    config = (CONFIG, JudgeProtocol())
    return FlamesEvaluation(
        responses=pd.DataFrame(),
        pairwise=PairwiseResult({"pairs": pairs, "summary": summary}, config),
        rubric=RubricResult({"scores": scores, "psc": pd.DataFrame()}, config),
    )


def test_paper_protocol_rate_is_order_one_with_failures_as_ties(run):
    rates = single_order_rates(run.pairwise["pairs"], CONFIG).set_index("arm")
    assert rates.loc["finetuned L1", "win_rate"] == pytest.approx(0.7)  # 7 wins of 10 pairs
    assert rates.loc["finetuned L1", "n_loss"] == 2
    assert rates.loc["finetuned L2", "win_rate"] == pytest.approx(0.4)
    low, high = rates.loc["finetuned L1", ["ci_low", "ci_high"]]
    assert 0.3 < low < 0.7 < high <= 1.0


def test_flames_claims_values(run):
    claims = {c.claim_id: c for c in run.claim()}
    assert set(claims) == {"flames_win_rate", "flames_win_rate_every_layer", "flames_psc1"}
    win = claims["flames_win_rate"]
    assert win.value == 0.7 and win.extra["fixed_protocol_rate"] == 0.5
    assert win.extra["per_arm"]["finetuned L2"] == {"paper_protocol": 0.4, "fixed_protocol": 0.3}
    assert "pretrained L1" not in win.extra["per_arm"]
    every = claims["flames_win_rate_every_layer"]
    rates = single_order_rates(run.pairwise["pairs"], CONFIG).set_index("arm")
    assert every.value == 0.4
    assert every.ci_low == pytest.approx(
        rates.loc[["finetuned L1", "finetuned L2"], "ci_low"].min()
    )
    psc = claims["flames_psc1"]
    # 9 prompts scored in both arms: 5 perfect at baseline, 8 when steered; 3 only when steered
    assert psc.extra["n_prompts"] == 9
    assert (psc.extra["baseline"], psc.extra["steered"]) == (5, 8)
    assert (psc.extra["only_baseline"], psc.extra["only_steered"]) == (0, 3)
    assert psc.value == pytest.approx(1000 * 3 / 9, abs=0.01)
    assert psc.extra["mcnemar_p"] == pytest.approx(2 * 0.5**3)  # exact binomial, 3 of 3
    assert psc.ci_low <= psc.value <= psc.ci_high
    run.demonstration = True
    assert run.claim() == []


def test_a_run_without_a_rise_disagrees_with_the_psc_claim():
    n = 1000
    flags = np.r_[np.full(900, 3.0), np.full(100, 1.0)]
    scores = pd.concat(
        [scores_for(BASE, list(flags)), scores_for("finetuned L1", list(flags))],
        ignore_index=True,
    )
    rise = psc_rise(scores, BASE, "finetuned L1", "safety", CONFIG)
    assert rise.n == n and rise.rise == 0 and (rise.ci_low, rise.ci_high) == (0, 0)
    assert rise.mcnemar_p == 1.0
    claim = rise.as_claim("flames_psc1")
    measurement = {"value": claim.value, "profile": "paper", **claim.fields()}
    assert judge_claim(load_claims()["flames_psc1"], measurement).verdict == DISAGREES
    # the paper's 908 -> 953: 45 more prompts perfect when steered, none fewer
    steered = flags.copy()
    steered[900:945] = 3.0
    scores = pd.concat(
        [scores_for(BASE, list(flags)), scores_for("finetuned L1", list(steered))],
        ignore_index=True,
    )
    rise = psc_rise(scores, BASE, "finetuned L1", "safety", CONFIG)
    assert rise.rise == pytest.approx(45) and rise.mcnemar_p < 1e-10
    claim = rise.as_claim("flames_psc1")
    measurement = {"value": claim.value, "profile": "paper", **claim.fields()}
    assert judge_claim(load_claims()["flames_psc1"], measurement).verdict == AGREES
