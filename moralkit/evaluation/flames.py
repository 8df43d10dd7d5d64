"""The Flames pipeline: generate baseline and steered answers, judge them pairwise and by rubric.

(paper §5.1–5.3; book: Methods › Evaluation, methods/evaluation.md.) Chapter 08's Flames
recipe, :func:`run_flames`, runs the paper's evaluation for any set of steering arms with the
settings of one :class:`FlamesConfig`: the seeded prompt sample and the decoding
(:meth:`FlamesConfig.prompts`, :meth:`FlamesConfig.decoding`), responses generated (and
cached) arm by arm (:func:`flames_arm`, through :func:`moralkit.steering.generate_responses`),
every steered arm paired with the unsteered answers to the same prompts and judged in both
orders (:func:`~moralkit.evaluation.judge.judge_pairwise`), and every answer scored on the Flames
safety and emotion rubrics (:func:`~moralkit.evaluation.judge.judge_rubric`), giving PSC1 /
PSC2 per arm (:func:`judge_responses`). The workflow's ``generate`` and ``judge`` jobs call the
same functions, one arm or one judged pair at a time.
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
from moralkit.models.generation import DecodingConfig
from moralkit.results import ClaimValue, config_from_parameters
from moralkit.steering.generation import generate_responses
from moralkit.steering.hook import SteeringConfig, SteeringSAE, steering_arms

if TYPE_CHECKING:
    from moralkit.models import LoadedModel


JUDGE_KINDS = ("scripted", "environment")
PROTOCOLS = {"fixed": JudgeProtocol(), "paper": PAPER_PROTOCOL}
#: the steered arms the Flames evaluation judges (the pretrained-SAE control is measured offline)
FLAMES_MODES = ("finetuned",)


@dataclass(frozen=True)
class FlamesConfig:
    """Chapter 08's Flames settings (paper §5.1-5.3): prompt sample, decoding, judging.

    ``n_prompts`` prompts (None: all 1,000) drawn with ``seed``; ``max_new_tokens`` and
    ``decoding_setting`` (``same``: one decoding for both arms; ``paper``: the paper's two) the
    generation; ``judge`` (``scripted`` | ``environment``, :func:`judge_session`),
    ``protocol`` (``fixed`` | ``paper``) and ``n_bootstrap`` the judging.
    """

    n_prompts: int | None = None
    max_new_tokens: int = 512
    decoding_setting: str = "same"
    judge: str = "scripted"
    protocol: str = "fixed"
    n_bootstrap: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.judge not in JUDGE_KINDS:
            raise ValueError(f"judge={self.judge!r}; expected one of {JUDGE_KINDS}")
        protocol_named(self.protocol)

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> FlamesConfig:
        """The settings from the steering chapter's parameters (``n_flames_prompts``, ...)."""
        return config_from_parameters(cls, params, n_prompts="n_flames_prompts")

    def prompts(self, limit: int = 0) -> pd.DataFrame:
        """The seeded prompt sample (id, dimension, subcomponent, prompt); only its first
        ``limit`` prompts when ``limit`` > 0 (a pilot run)."""
        from moralkit.data.benchmarks import flames_prompts, sample_rows

        prompts = sample_rows(flames_prompts(), self.n_prompts, self.seed)
        return prompts.head(int(limit)) if limit else prompts

    def decoding(self) -> DecodingConfig:
        """The decoding both arms start from (``decoding_setting`` may change the baseline's)."""
        return DecodingConfig(max_new_tokens=self.max_new_tokens, seed=self.seed)


def flames_arms(layers: Sequence[int], strengths: Sequence[float]) -> list[SteeringConfig]:
    """The unsteered arm and the fine-tuned arm at every layer and strength."""
    return steering_arms(layers, strengths, modes=FLAMES_MODES)


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


def flames_arm(
    loaded: LoadedModel,
    prompts: pd.DataFrame,
    arm: SteeringConfig,
    saes: Mapping[tuple[str, int], SteeringSAE] | None = None,
    decoding: DecodingConfig | None = None,
    decoding_setting: str = "same",
    cache_dir: str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Responses of one arm to ``prompts`` (id, dimension, prompt): the prompts' columns, the
    generation's and ``model``; the SAEs are read at the arm's layer."""
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
    table = pd.concat([prompts.reset_index(drop=True), got.drop(columns="prompt")], axis=1)
    return table.assign(model=loaded.name)


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
    """Responses to ``prompts`` for the unsteered arm and ``arms`` (:func:`flames_arm` each)."""
    arms = [SteeringConfig(mode="none"), *[a for a in arms if a.mode != "none"]]
    tables = [
        flames_arm(loaded, prompts, arm, saes, decoding, decoding_setting, cache_dir, progress)
        for arm in arms
    ]
    return pd.concat(tables, ignore_index=True)


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


def judge_responses(
    responses: pd.DataFrame, config: FlamesConfig, log_dir: str | None = None
) -> tuple[PairwiseResult, RubricResult, bool]:
    """Judge ``responses`` (unsteered and steered arms) with the judge, protocol and bootstrap
    of ``config``: ``(pairwise, rubric, demonstration)`` (:func:`judge_flames` inside
    :func:`judge_session`). ``log_dir`` is where inspect-ai writes its logs."""
    settings: dict[str, Any] = {"n_bootstrap": config.n_bootstrap}
    if log_dir is not None:
        settings["log_dir"] = log_dir
    with judge_session(config.judge, **settings) as (judge, demonstration):
        pairwise, rubric = judge_flames(responses, judge, protocol_named(config.protocol))
    return pairwise, rubric, demonstration


def run_flames(
    loaded: LoadedModel,
    arms: Sequence[SteeringConfig],
    saes: Mapping[tuple[str, int], SteeringSAE] | None,
    config: FlamesConfig,
    prompts: pd.DataFrame | None = None,
    log_dir: str | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
) -> FlamesRun:
    """Chapter 08's Flames recipe: generate (cached) and judge, the whole evaluation of paper
    §5 for ``arms``, with the prompt sample, decoding and judge of ``config`` (``prompts``
    replaces the sample). A scripted judge makes it a demonstration, which records no claims.
    """
    prompts = config.prompts() if prompts is None else prompts
    responses = flames_responses(
        loaded, prompts, arms, saes, config.decoding(), config.decoding_setting, cache_dir, progress
    )
    pairwise, rubric, demonstration = judge_responses(responses, config, log_dir)
    return FlamesRun(responses, pairwise, rubric, demonstration)


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
