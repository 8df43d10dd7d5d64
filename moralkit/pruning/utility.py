"""Utility under pruning: chapter 08's offline behavioural measures and perplexity per mask.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md; the measures:
Methods › Evaluation, methods/evaluation.md.) Each headline mask is measured the way chapter 08
measures a steering arm: Moral Stories preference, ETHICS zero-shot accuracy (normal and hard)
and perplexity on neutral text, item by item with
:func:`moralkit.evaluation.behaviour.score_items` / ``fluency_items``, summarised with bootstrap
intervals and paired differences against the unpruned model by
:func:`moralkit.evaluation.behaviour.summarise`. Item scores are not cached here: under a mask
the model's weights are not the ones its weights hash names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from moralkit.evaluation.behaviour import (
    FLUENCY,
    BehaviourConfig,
    BehaviourResult,
    fluency_items,
    score_items,
    summarise,
)
from moralkit.pruning.masks import PruneMask, pruned

if TYPE_CHECKING:
    from moralkit.evaluation.schema import Benchmark
    from moralkit.models import LoadedModel

UNPRUNED = "unpruned"


@dataclass(frozen=True)
class PruningArm:
    """One pruning condition in the shape :func:`~moralkit.evaluation.behaviour.summarise`
    reads from a steering arm: ``stage`` "none" (the unpruned reference) or "pruned"."""

    label: str
    stage: str = "pruned"
    layer: float = float("nan")
    strength: float = 0.0
    features: str = "all"


def perplexity_of(fluency: pd.DataFrame) -> float:
    """Token-level perplexity from :func:`~moralkit.evaluation.behaviour.fluency_items`."""
    return float(np.exp(fluency["nll"].sum() / fluency["tokens"].sum()))


def behaviour_under_masks(
    loaded: LoadedModel,
    benchmarks: Sequence[Benchmark],
    masks: Mapping[str, PruneMask],
    config: BehaviourConfig,
    fluency: Callable[[PruneMask | None], pd.DataFrame] | None = None,
) -> BehaviourResult:
    """Chapter 08's measures unpruned and under each of ``masks`` (label -> mask).

    ``fluency(mask)`` may supply the neutral-text scores already computed for a mask (one
    forward pass shared with the perplexity column of the effects table).
    """
    conditions = [(PruningArm(UNPRUNED, stage="none"), None)]
    conditions += [(PruningArm(label), mask) for label, mask in masks.items()]
    scores = {}
    for arm, mask in conditions:
        with pruned(loaded.model, mask):
            tables = {b.name: score_items(loaded, b, config) for b in benchmarks}
            tables[FLUENCY] = fluency(mask) if fluency else fluency_items(loaded, config)
        scores[arm] = {k: v.astype({"id": str}) for k, v in tables.items()}
    return summarise(loaded.name, benchmarks, scores, config)


def utility_table(behaviour: BehaviourResult, conditions: Mapping[str, str]) -> pd.DataFrame:
    """One row per model x condition x measure: value with its 95% interval and the paired
    difference from the unpruned model. ``conditions`` maps an arm label (a direction) to its
    condition name (e.g. "pruned q=0.0005")."""
    summary = behaviour["summary"]
    diffs = behaviour["differences"]
    keys = ["model", "benchmark", "arm"]
    columns = [*keys, "metric", "value", "ci_low", "ci_high", "n"]
    rows = summary[columns] if len(summary) else pd.DataFrame(columns=columns)
    if len(diffs):
        paired = diffs[[*keys, "difference", "ci_low", "ci_high"]].rename(
            columns={"ci_low": "difference_ci_low", "ci_high": "difference_ci_high"}
        )
        rows = rows.merge(paired, on=keys, how="left")
    flu = behaviour["fluency"].assign(
        benchmark="neutral text", metric="perplexity", value=lambda t: t["perplexity"]
    )
    flu = flu.rename(columns={"n_texts": "n"})
    flu["difference"] = flu["perplexity"] - flu.loc[flu["stage"] == "none", "perplexity"].iloc[0]
    table = pd.concat(
        [rows, flu[[*keys, "metric", "value", "ci_low", "ci_high", "n", "difference"]]],
        ignore_index=True,
    )
    table["difference"] = table["difference"].where(table["arm"] != UNPRUNED, 0.0)
    table.insert(1, "direction", table["arm"].where(table["arm"] != UNPRUNED, "none"))
    table.insert(2, "condition", table["arm"].map(conditions).fillna(UNPRUNED))
    return table.drop(columns="arm").rename(columns={"benchmark": "measure"})
