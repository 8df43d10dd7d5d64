"""Behavioural evaluation (paper §5; book: Methods › Evaluation, methods/evaluation.md).

- :mod:`~moralkit.evaluation.judge`: LLM-as-judge through inspect-ai, pairwise (both orders)
  and rubric scores, with the paper's protocol available as :data:`PAPER_PROTOCOL`;
- :mod:`~moralkit.evaluation.judge_prompts`: Flames prompts, :class:`Rubric`, answer parsers;
- :mod:`~moralkit.evaluation.flames`: generation + judging for steering arms on Flames;
- :mod:`~moralkit.evaluation.scripted_judge`: a scripted OpenAI-compatible server on 127.0.0.1;
- :mod:`~moralkit.evaluation.behaviour`: offline log-likelihood measures under steering;
- :mod:`~moralkit.evaluation.schema`: the bring-your-own-benchmark schemas.

Importing this package is cheap: inspect-ai is imported only when a judgment runs.
"""

from moralkit.evaluation.judge import (
    PAPER_PROTOCOL,
    JudgeConfig,
    JudgeProtocol,
    PairwiseResult,
    RubricResult,
    judge_pairwise,
    judge_rubric,
)
from moralkit.evaluation.judge_prompts import FLAMES_RUBRICS, Rubric
from moralkit.evaluation.schema import Benchmark, load_benchmark

__all__ = [
    "FLAMES_RUBRICS",
    "PAPER_PROTOCOL",
    "Benchmark",
    "JudgeConfig",
    "JudgeProtocol",
    "PairwiseResult",
    "Rubric",
    "RubricResult",
    "judge_pairwise",
    "judge_rubric",
    "load_benchmark",
]
