"""The Flames pipeline: generate baseline and steered answers, judge them pairwise and by rubric.

(paper §5.1–5.3; book: Methods › Evaluation, methods/evaluation.md.) One call runs the paper's
evaluation for any set of steering arms: responses are generated (and cached) with
:func:`moralkit.steering.generate_responses`, every steered arm is paired with the unsteered
answers to the same prompts and judged in both orders
(:func:`~moralkit.evaluation.judge.judge_pairwise`), and every answer is scored on the Flames
safety and emotion rubrics (:func:`~moralkit.evaluation.judge.judge_rubric`), giving PSC1 /
PSC2 per arm.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from moralkit.evaluation.judge import (
    PAPER_PROTOCOL,
    JudgeConfig,
    JudgeProtocol,
    PairwiseResult,
    RubricResult,
    judge_pairwise,
    judge_rubric,
)
from moralkit.evaluation.judge_prompts import FLAMES_RUBRICS
from moralkit.results import ClaimValue
from moralkit.steering.generation import DecodingConfig, generate_responses
from moralkit.steering.hook import SteeringConfig, SteeringSAE

if TYPE_CHECKING:
    from moralkit.models import LoadedModel


@dataclass
class FlamesRun:
    """Responses (one row per prompt × arm), pairwise and rubric results of one Flames run.

    ``demonstration`` marks a run against a scripted judge: it records no claims.
    """

    responses: pd.DataFrame
    pairwise: PairwiseResult
    rubric: RubricResult
    demonstration: bool = False

    def claim(self) -> list[ClaimValue]:
        """Peak and lowest per-layer win-rate of the fine-tuned arms, and PSC1 / PSC2 of the
        peak arm (baseline PSC as an extra); nothing for a demonstration run."""
        if self.demonstration:
            return []
        summary = self.pairwise["summary"]
        tuned = summary[summary["arm"].str.startswith("finetuned")].dropna(subset=["win_rate"])
        if tuned.empty:
            return []
        peak = tuned.loc[tuned["win_rate"].idxmax()]
        psc = self.rubric["psc"].set_index(["arm", "rubric"])["psc"]
        base_arm = SteeringConfig(mode="none").label
        note = f"peak arm {peak['arm']}; win-rate = wins / (wins + ties + losses), both orders"
        out = [
            ClaimValue(
                "flames_win_rate",
                round(float(peak["win_rate"]), 4),
                note,
                {"per_arm": dict(zip(tuned["arm"], tuned["win_rate"].round(4), strict=True))},
            ),
            ClaimValue(
                "flames_win_rate_every_layer",
                round(float(tuned["win_rate"].min()), 4),
                "lowest win-rate over the fine-tuned arms",
            ),
        ]
        for claim_id, rubric in (("flames_psc1", "safety"), ("flames_psc2", "emotion")):
            if (peak["arm"], rubric) in psc.index:
                out.append(
                    ClaimValue(
                        claim_id,
                        int(psc[(peak["arm"], rubric)]),
                        note,
                        {"baseline": int(psc.get((base_arm, rubric), -1))},
                    )
                )
        return out


def flames_responses(
    loaded: LoadedModel,
    prompts: pd.DataFrame,
    arms: Sequence[SteeringConfig],
    saes: Mapping[tuple[str, int], SteeringSAE] | None = None,
    decoding: DecodingConfig | None = None,
    decoding_setting: str = "same",
    cache_dir: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Responses to ``prompts`` (id, dimension, prompt) for the unsteered arm and ``arms``."""
    arms = [SteeringConfig(mode="none"), *[a for a in arms if a.mode != "none"]]
    tables = []
    for arm in arms:
        layer_saes = {m: s for (m, layer), s in (saes or {}).items() if layer == arm.layer}
        got = generate_responses(
            loaded,
            list(prompts["prompt"]),
            arm,
            layer_saes,
            decoding or DecodingConfig(),
            decoding_setting,
            cache_dir=cache_dir,
            progress=progress,
        )
        tables.append(
            pd.concat([prompts.reset_index(drop=True), got.drop(columns="prompt")], axis=1)
        )
    return pd.concat(tables, ignore_index=True).assign(model=loaded.name)


def pairs_against_baseline(responses: pd.DataFrame) -> pd.DataFrame:
    """One row per (steered arm, prompt): baseline and candidate answers, matched by prompt id."""
    base = responses[responses["mode"] == "none"].set_index("id")["response"]
    steered = responses[responses["mode"] != "none"]
    pairs = steered.assign(
        baseline=steered["id"].map(base), candidate=steered["response"], prompt_id=steered["id"]
    )
    pairs["id"] = pairs["arm"] + "|" + pairs["prompt_id"].astype(str)
    return pairs[
        [
            "id",
            "prompt_id",
            "arm",
            "layer",
            "strength",
            "dimension",
            "prompt",
            "baseline",
            "candidate",
        ]
    ].reset_index(drop=True)


def judge_flames(
    responses: pd.DataFrame,
    config: JudgeConfig | None = None,
    protocol: JudgeProtocol | None = None,
    model: Any = None,
) -> tuple[PairwiseResult, RubricResult]:
    """Pairwise win-rates per steered arm and PSC1 (safety) / PSC2 (emotion) per arm."""
    config, protocol = config or JudgeConfig(), protocol or JudgeProtocol()
    pairwise = judge_pairwise(
        pairs_against_baseline(responses), config, protocol, model=model, group=["arm"]
    )
    items = responses.assign(prompt_id=responses["id"], id=responses["arm"] + "|" + responses["id"])
    rubric = judge_rubric(items, FLAMES_RUBRICS, config, protocol, model=model, group=["arm"])
    return pairwise, rubric


def run_flames(
    loaded: LoadedModel,
    prompts: pd.DataFrame,
    arms: Sequence[SteeringConfig],
    saes: Mapping[tuple[str, int], SteeringSAE] | None = None,
    decoding: DecodingConfig | None = None,
    decoding_setting: str = "same",
    judge: JudgeConfig | None = None,
    protocol: JudgeProtocol | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
    demonstration: bool = False,
) -> FlamesRun:
    """Generate (cached) and judge: the whole Flames evaluation of paper §5 for ``arms``.

    ``demonstration=True`` (a scripted judge) keeps the run from recording claims.
    """
    responses = flames_responses(
        loaded, prompts, arms, saes, decoding, decoding_setting, cache_dir, progress
    )
    pairwise, rubric = judge_flames(responses, judge, protocol)
    return FlamesRun(responses, pairwise, rubric, demonstration)


JUDGE_KINDS = ("scripted", "environment")
PROTOCOLS = {"fixed": JudgeProtocol(), "paper": PAPER_PROTOCOL}


def protocol_named(name: str) -> JudgeProtocol:
    """``"fixed"`` (default protocol) or ``"paper"`` (:data:`PAPER_PROTOCOL`)."""
    if name not in PROTOCOLS:
        raise ValueError(f"protocol={name!r}; expected one of {list(PROTOCOLS)}")
    return PROTOCOLS[name]


@contextmanager
def judge_session(kind: str, **settings: Any) -> Iterator[tuple[JudgeConfig, bool]]:
    """``(JudgeConfig, demonstration)`` for a judge ``kind``, with ``settings`` applied.

    ``"environment"``: the endpoint named by ``MORALKIT_JUDGE_*``. ``"scripted"``: a local
    scripted endpoint (:func:`~moralkit.evaluation.scripted_judge.demo_script`) served for the
    duration of the block; its verdicts are hashes of the prompt, so the run is a
    demonstration whose numbers mean nothing (``demonstration=True``). A real judge's answers
    are cached (``JudgeConfig.cache``) unless ``settings`` say otherwise: the workflow's judge
    jobs and the chapter then pay for each question once.
    """
    from moralkit.evaluation.scripted_judge import demo_script, serve_scripted_judge

    if kind not in JUDGE_KINDS:
        raise ValueError(f"judge={kind!r}; expected one of {JUDGE_KINDS}")
    config = replace(JudgeConfig(cache=kind == "environment"), **settings)
    if kind == "environment":
        yield config, False
        return
    with serve_scripted_judge(demo_script) as endpoint:
        yield replace(config, model="scripted-demo-judge", base_url=endpoint.base_url), True
