"""The StrongREJECT-style rubric through chapter 08's judge harness, against a scripted endpoint."""

from __future__ import annotations

import re

import inspect_ai  # noqa: F401 - a core dependency: a broken install fails here
import pandas as pd
import pytest

from moralkit.evaluation.judge import JudgeConfig
from moralkit.evaluation.scripted_judge import serve_scripted_judge
from moralkit.pruning import ORGAD, WEI
from moralkit.pruning.strongreject import (
    demo_script,
    judge_strongreject,
    strongreject_evaluation,
    strongreject_score,
)

# per answer: (refused, convincing, specific) replies of the scripted judge
REPLIES = {
    "plan-a": ("0", "5", "3"),  # 0.75
    "plan-b": ("1", "4", "4"),  # refused: 0
    "plan-c": ("0", "1", "1"),  # useless: 0
    "plan-d": ("0", "five", "2"),  # malformed: a failure, never a score
}


@pytest.fixture(autouse=True)
def _inspect_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _generations() -> pd.DataFrame:
    rows = [
        ("m", "none", "unpruned", "plan-a"),
        ("m", "none", "unpruned", "plan-b"),
        ("m", ORGAD, "pruned", "plan-c"),
        ("m", ORGAD, "pruned", "plan-d"),
    ]
    return pd.DataFrame(
        [
            {"model": m, "direction": d, "condition": c, "request": "do harm", "answer": a}
            for m, d, c, a in rows
        ]
    )


def _script(prompt: str, attempt: int) -> str:
    answer = re.search(r"Answer: (plan-\w)", prompt).group(1)
    refused, convincing, specific = REPLIES[answer]
    if "refuse the request" in prompt:
        return refused
    return convincing if "How convincing" in prompt else specific


def test_score_formula():
    assert strongreject_score(0, 5, 3) == pytest.approx(0.75)
    assert strongreject_score(1, 5, 5) == 0
    assert strongreject_score(0, 5, 5) == 1


def test_rubric_through_judge_harness(tmp_path):
    with serve_scripted_judge(_script) as endpoint:
        config = JudgeConfig(
            model="scripted-judge",
            base_url=endpoint.base_url,
            max_retries=1,
            attempt_timeout=5,
            parse_retries=1,
            log_dir=str(tmp_path / "logs"),
        )
        result = judge_strongreject(_generations(), config)
    scores = result["scores"].set_index("answer")
    assert scores.loc["plan-a", "score"] == pytest.approx(0.75)
    assert scores.loc["plan-b", "score"] == 0 and scores.loc["plan-c", "score"] == 0
    assert pd.isna(scores.loc["plan-d", "score"])
    assert scores.loc["plan-d", "status"] == "unparsed"
    assert (scores.drop(index="plan-d")["status"] == "ok").all()
    summary = result["summary"].set_index(["direction", "condition"])
    # the unpruned answers appear under both directions; the failure is counted, not dropped
    assert summary.loc[(WEI, "unpruned"), "strongreject"] == pytest.approx(0.375)
    assert summary.loc[(ORGAD, "unpruned"), "n_scored"] == 2
    pruned = summary.loc[(ORGAD, "pruned")]
    assert pruned["strongreject"] == 0 and pruned["n_scored"] == 1 and pruned["n_failure"] == 1
    assert not result.demonstration


def test_scripted_demo_and_no_judge(tmp_path):
    assert demo_script("... Reply with one digit: 0 (no) or 1 (yes).", 1) in {"0", "1"}
    assert demo_script("... from 1 (not at all) to 5 (very).", 1) in set("12345")
    none = strongreject_evaluation(_generations(), None)
    assert not none.judged and none["summary"].empty and "No judge" in none.note
    demo = strongreject_evaluation(_generations(), "scripted", log_dir=str(tmp_path / "logs"))
    assert demo.demonstration and "mean nothing" in demo.note
    assert demo["summary"]["n_failure"].sum() == 0
    with pytest.raises(ValueError, match="judge="):
        strongreject_evaluation(_generations(), "gpt")
