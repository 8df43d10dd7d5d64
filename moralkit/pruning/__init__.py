"""Harmful-generation and safety weights: importance scores, set differences, pruning, measures.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) Wei et al.'s
set-difference attribution ("wei": prune the weights refusals rely on) implemented as
published, and Orgad et al.'s variant on top of it ("orgad": signed SNIP, harmful completions as
target, prune the weights harmful generation relies on). The package by job:

- :mod:`~moralkit.pruning.calibration`: calibration pairs, prompt format, response-only labels;
- :mod:`~moralkit.pruning.importance`: SNIP / signed SNIP / Wanda scores, cached top-k indices;
- :mod:`~moralkit.pruning.masks`: the set difference and the exact-restore ``pruned`` context;
- :mod:`~moralkit.pruning.generation`: greedy answers and the offline harmful completions;
- :mod:`~moralkit.pruning.measures`: keyword-rule ASR, log-likelihood margins (scoring and
  perplexity: :mod:`moralkit.models.scoring`); :mod:`~moralkit.pruning.phrasings`: the margin's
  held-out phrasings and their check against the calibration strings;
- :mod:`~moralkit.pruning.measurement`: every measure once per mask (effects, compactness);
- :mod:`~moralkit.pruning.random_masks`: random masks with the same count per matrix, and where
  a headline mask falls among them;
- :mod:`~moralkit.pruning.unity`: harm-type overlaps between chance and a random-group ceiling,
  over prompt resamples (sets rebuilt by :mod:`~moralkit.pruning.candidates`);
- :mod:`~moralkit.pruning.utility`: chapter 08's offline behavioural measures under each mask;
- :mod:`~moralkit.pruning.strongreject`: a StrongREJECT-style rubric judged through chapter
  08's harness (a judge endpoint, a scripted demonstration, or none);
- :mod:`~moralkit.pruning.results` and :mod:`~moralkit.pruning.recipe`: chapter 10's
  ``HarmfulWeightsConfig`` -> ``HarmfulWeightsResult`` and the moral-diagnostic bridge.
"""

from moralkit.pruning.calibration import BASE_TEMPLATE, CalibrationSet, encode_example
from moralkit.pruning.importance import (
    METHODS,
    SCOPES,
    ImportanceConfig,
    ImportanceIndex,
    gradient_scores,
    importance_index,
    linear_layers,
    wanda_scores,
)
from moralkit.pruning.masks import (
    WEI_DEFAULT_P,
    WEI_DEFAULT_Q,
    WEI_README_P,
    WEI_README_Q,
    PruneMask,
    jaccard,
    pruned,
    set_difference,
)
from moralkit.pruning.measures import (
    REFUSAL_STRINGS,
    attack_success_rate,
    compliance_margins,
    is_attack_success,
    is_refusal,
    margins_by_phrasing,
)
from moralkit.pruning.phrasings import HELD_OUT_PHRASING, PREFIX_PHRASING, Phrasing, held_out
from moralkit.pruning.random_masks import excess_drop, random_mask_like, random_masks
from moralkit.pruning.results import (
    DIRECTIONS,
    ORGAD,
    WEI,
    HarmfulWeightsConfig,
    HarmfulWeightsResult,
    PrunedDiagnosticsResult,
)
from moralkit.pruning.strongreject import (
    STRONGREJECT_RUBRICS,
    StrongRejectResult,
    judge_strongreject,
    strongreject_evaluation,
    strongreject_score,
)

__all__ = [
    "BASE_TEMPLATE",
    "DIRECTIONS",
    "HELD_OUT_PHRASING",
    "PREFIX_PHRASING",
    "METHODS",
    "ORGAD",
    "REFUSAL_STRINGS",
    "SCOPES",
    "STRONGREJECT_RUBRICS",
    "WEI",
    "WEI_DEFAULT_P",
    "WEI_DEFAULT_Q",
    "WEI_README_P",
    "WEI_README_Q",
    "PrunedDiagnosticsResult",
    "CalibrationSet",
    "HarmfulWeightsConfig",
    "HarmfulWeightsResult",
    "ImportanceConfig",
    "ImportanceIndex",
    "Phrasing",
    "PruneMask",
    "StrongRejectResult",
    "attack_success_rate",
    "compliance_margins",
    "encode_example",
    "excess_drop",
    "gradient_scores",
    "held_out",
    "importance_index",
    "is_attack_success",
    "is_refusal",
    "jaccard",
    "linear_layers",
    "margins_by_phrasing",
    "random_mask_like",
    "random_masks",
    "judge_strongreject",
    "pruned",
    "strongreject_evaluation",
    "set_difference",
    "strongreject_score",
    "wanda_scores",
]
