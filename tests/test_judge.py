"""inspect-ai judging against a scripted OpenAI-compatible server on 127.0.0.1 and mockllm."""

from __future__ import annotations

import re
from dataclasses import replace

import inspect_ai  # noqa: F401 - a core dependency: a broken install fails here
import pandas as pd
import pytest

from moralkit.evaluation.judge import (
    PAPER_PROTOCOL,
    JudgeConfig,
    JudgeProtocol,
    judge_pairwise,
    judge_rubric,
)
from moralkit.evaluation.judge_prompts import FLAMES_RUBRICS, parse_score, parse_verdict
from moralkit.evaluation.scripted_judge import ScriptedReply, serve_scripted_judge


@pytest.fixture(autouse=True)
def _inspect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _config(tmp_path, **kw) -> JudgeConfig:
    base = dict(
        model="scripted-judge",
        max_retries=2,
        attempt_timeout=1,
        timeout=60,
        parse_retries=1,
        n_bootstrap=200,
        log_dir=str(tmp_path / "logs"),
    )
    return JudgeConfig(**{**base, **kw})


def _answers(prompt: str) -> tuple[str, str]:
    a = re.search(r"助手A的回答：(.*?)\n\n助手B", prompt, re.S).group(1)
    b = re.search(r"助手B的回答：(.*?)\n\n如果", prompt, re.S).group(1)
    return a, b


def _pairs(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "prompt": [f"问题 {i}" for i in range(n)],
            "dimension": ["Safety"] * n,
            "baseline": [f"baseline answer {i}" for i in range(n)],
            "candidate": [f"candidate answer {i}" for i in range(n)],
        }
    )


def test_parsers():
    assert parse_verdict(" Win.") == "win" and parse_verdict("tie") == "tie"
    assert parse_verdict("win or lose") is None and parse_verdict("B is better") is None
    assert parse_score("3分", (1, 2, 3)) == 3 and parse_score("2", (1, 3)) is None
    assert parse_score("1 or 3", (1, 3)) is None


def test_order_biased_judge_is_cancelled_by_the_swap(tmp_path, monkeypatch):
    """A judge that always prefers position A: all losses without the swap, all ties with it;
    a judge that prefers 'GOOD' answers wins them in both orders."""
    monkeypatch.setenv("MORALKIT_JUDGE_API_KEY", "local")

    def biased(prompt, attempt):
        a, b = _answers(prompt)
        if "GOOD" in a + b:
            return "win" if "GOOD" in b else "lose"
        return "lose"  # position bias: A always better

    pairs = _pairs(6)
    pairs.loc[:1, "candidate"] = ["GOOD answer 0", "GOOD answer 1"]
    with serve_scripted_judge(biased) as endpoint:
        config = _config(tmp_path, base_url=endpoint.base_url)
        fixed = judge_pairwise(pairs, config)
        paper = judge_pairwise(pairs, config, PAPER_PROTOCOL)
    outcomes = list(fixed["pairs"]["outcome"])
    assert outcomes == ["win", "win", "tie", "tie", "tie", "tie"]
    assert list(paper["pairs"]["outcome"]) == ["win", "win", "loss", "loss", "loss", "loss"]
    summary = fixed["summary"].iloc[0]
    assert (summary["n_win"], summary["n_tie"], summary["n_loss"], summary["n_failure"]) == (
        2,
        4,
        0,
        0,
    )
    assert summary["win_rate"] == pytest.approx(2 / 6)
    assert summary["ci_low"] <= summary["win_rate"] <= summary["ci_high"]
    assert summary["decisive_win_rate"] == 1.0
    assert fixed.log_path is not None and fixed.log_path.exists()


def test_a_cached_judge_is_asked_each_question_once(tmp_path, monkeypatch):
    """``cache=True``: a rerun reads the judge's answers back (inspect-ai's generate cache); a
    malformed first answer is read back too, but its retry always asks the judge anew."""
    monkeypatch.setenv("MORALKIT_JUDGE_API_KEY", "local")
    pairs = _pairs(3)
    with serve_scripted_judge(lambda prompt, attempt: "win") as endpoint:
        config = _config(tmp_path, base_url=endpoint.base_url, cache=True)
        first = judge_pairwise(pairs, config)
        assert len(endpoint.calls) == 6  # three pairs, both orders
        again = judge_pairwise(pairs, config)
        assert len(endpoint.calls) == 6
        judge_pairwise(pairs, replace(config, cache=False))
        assert len(endpoint.calls) == 12
    assert list(again["pairs"]["outcome"]) == list(first["pairs"]["outcome"]) == ["tie"] * 3

    with serve_scripted_judge(lambda prompt, attempt: "win" if attempt > 1 else "?") as endpoint:
        config = _config(tmp_path / "malformed", base_url=endpoint.base_url, cache=True)
        first = judge_pairwise(pairs, config)
        assert len(endpoint.calls) == 12  # every question asked twice
        again = judge_pairwise(pairs, config)
        assert len(endpoint.calls) == 18  # the cached "?" read back, its retry asked anew
    assert list(again["pairs"]["outcome"]) == list(first["pairs"]["outcome"])


@pytest.mark.slow  # inspect-ai backs off 3-6 s before each retry
def test_faults_retried_then_reported_as_failures(tmp_path, monkeypatch):
    """429 and 500 once then fine; a time-out once then fine; always 500 → failure; malformed
    once then fine; always malformed → failure (the paper's protocol: a tie)."""
    monkeypatch.setenv("MORALKIT_JUDGE_API_KEY", "local")

    def faulty(prompt, attempt):
        a, _ = _answers(prompt)
        kind = a.split()[-1]
        if kind == "r429" and attempt == 1:
            return ScriptedReply(status=429, retry_after_s=0)
        if kind == "r500" and attempt == 1:
            return ScriptedReply(status=500)
        if kind == "slow" and attempt == 1:
            return ScriptedReply("win", delay_s=2.5)
        if kind == "down":
            return ScriptedReply(status=500)
        if kind == "garbled" and attempt == 1:
            return "I think B, probably"
        if kind == "nonsense":
            return "no idea"
        return "tie"

    kinds = ["r429", "r500", "slow", "down", "garbled", "nonsense"]
    pairs = pd.DataFrame(
        {
            "id": kinds,
            "prompt": ["q"] * 6,
            "dimension": ["Safety"] * 6,
            "baseline": [f"x {k}" for k in kinds],
            "candidate": [f"y {k}" for k in kinds],
        }
    )
    with serve_scripted_judge(faulty) as endpoint:
        config = _config(tmp_path, base_url=endpoint.base_url, max_retries=1)
        fixed = judge_pairwise(pairs, config, JudgeProtocol(swap_positions=False))
        paper = judge_pairwise(pairs, config, PAPER_PROTOCOL)
    got = fixed["pairs"].set_index("id")
    assert list(got["outcome"]) == ["tie", "tie", "tie", "failure", "tie", "failure"]
    assert got.loc["down", "status_ab"].startswith("error")
    assert got.loc["nonsense", "status_ab"] == "unparsed"
    summary = fixed["summary"].iloc[0]
    assert summary["n_failure"] == 2 and summary["n_tie"] == 4
    assert summary["win_rate"] == 0.0  # failures are outside the denominator, not ties
    assert paper["summary"].iloc[0]["n_tie"] == 6 and paper["summary"].iloc[0]["n_failure"] == 0


def test_rubric_scores_psc_and_case_fix(tmp_path, monkeypatch):
    """The binary Legality / Data-protection rubric, the case fix, parse failures."""
    monkeypatch.setenv("MORALKIT_JUDGE_API_KEY", "local")

    def rubric_judge(prompt, attempt):
        if "BROKEN" in prompt:
            return "three"
        if "（1或3）" in prompt or "情感表现" in prompt:  # binary safety rubric / emotion rubric
            return "3"
        return "2"  # the 1-2-3 safety rubric

    items = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "arm": ["base", "base", "steered", "steered"],
            "dimension": ["Data protection", "Safety", "Legality", "Safety"],
            "prompt": ["q1", "q2", "q3", "q4"],
            "response": ["r1", "r2", "r3", "BROKEN"],
        }
    )
    with serve_scripted_judge(rubric_judge) as endpoint:
        config = _config(tmp_path, base_url=endpoint.base_url)
        fixed = judge_rubric(items, FLAMES_RUBRICS, config, group=["arm"])
        paper = judge_rubric(items, FLAMES_RUBRICS, config, PAPER_PROTOCOL, group=["arm"])
    scores = fixed["scores"].set_index(["id", "rubric"])
    paper_scores = paper["scores"].set_index(["id", "rubric"])
    # "Data protection": binary rubric with the fix, the 1-2-3 one with the paper's spelling
    assert scores.loc[("a", "safety"), "score"] == 3
    assert paper_scores.loc[("a", "safety"), "score"] == 2
    assert scores.loc[("c", "safety"), "score"] == paper_scores.loc[("c", "safety"), "score"] == 3
    assert scores.loc[("b", "safety"), "score"] == 2 and scores.loc[("b", "emotion"), "score"] == 3
    # a malformed answer is retried, then a failure (no score); the paper scores it 1
    assert pd.isna(scores.loc[("d", "safety"), "score"])
    assert scores.loc[("d", "safety"), "status"] == "unparsed"
    assert paper_scores.loc[("d", "safety"), "score"] == 1
    psc = fixed["psc"].set_index(["arm", "rubric"])
    assert psc.loc[("base", "safety"), "psc"] == 1 and psc.loc[("base", "emotion"), "psc"] == 2
    assert psc.loc[("steered", "safety"), "psc"] == 1
    assert psc.loc[("steered", "safety"), "n_failure"] == 1
    assert psc.loc[("steered", "safety"), "n_scored"] == 1
    assert paper["psc"].set_index(["arm", "rubric"]).loc[("base", "safety"), "psc"] == 0


def test_mockllm_judge_runs_offline(tmp_path):
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    def outputs(input, tools, tool_choice, config):
        text = input[-1].text if hasattr(input[-1], "text") else str(input[-1])
        a, b = _answers(text)
        out = ModelOutput.from_content("mockllm/model", "win" if "better" in b else "lose")
        out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return out

    pairs = _pairs(3).assign(candidate=["better one", "better two", "plain"])
    model = get_model("mockllm/model", custom_outputs=outputs)
    result = judge_pairwise(pairs, _config(tmp_path), model=model)
    assert list(result["pairs"]["outcome"]) == ["win", "win", "tie"]


def test_missing_judge_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("MORALKIT_JUDGE_MODEL", raising=False)
    with pytest.raises(ValueError, match="MORALKIT_JUDGE_MODEL"):
        judge_pairwise(_pairs(1), JudgeConfig(log_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="'candidate'"):
        judge_pairwise(_pairs(1).drop(columns="candidate"), _config(tmp_path))
