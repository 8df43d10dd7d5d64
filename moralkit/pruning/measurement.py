"""What one model does under each pruning mask, each measure computed once per mask.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) :class:`Measures`
holds, per mask, the compliance margins (held-out phrasings, and the old "Sure, here is" pair
where asked: :mod:`moralkit.pruning.phrasings`), the neutral-text pass behind perplexity (also
chapter 08's fluency measure) and the greedy answers behind the attack success rate. The
effects, compactness and generations tables of chapter 10 are read from it, and so are the
random masks of :mod:`moralkit.pruning.random_masks`, whose answers are checked against the
unpruned ones in one teacher-forced pass and generated again only where they changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from moralkit.evaluation.behaviour import BehaviourConfig, fluency_items
from moralkit.pruning.generation import greedy_answers, keeps_greedy
from moralkit.pruning.masks import PruneMask, pruned
from moralkit.pruning.measures import attack_success_rate, is_attack_success, margins_by_phrasing
from moralkit.pruning.phrasings import PREFIX_PHRASING
from moralkit.pruning.results import ORGAD, UNPRUNED, WEI, HarmfulWeightsConfig
from moralkit.pruning.utility import perplexity_of

if TYPE_CHECKING:
    from moralkit.models import LoadedModel
    from moralkit.pruning.recipe import PruningData

#: one condition of the effects table: (direction, condition name, mask or None = unpruned)
Condition = tuple[str, str, "PruneMask | None"]


def behaviour_config(data: PruningData, config: HarmfulWeightsConfig) -> BehaviourConfig:
    """Chapter 08's measure settings for the run's neutral texts and resampling."""
    return BehaviourConfig(
        fluency_texts=data.perplexity_texts,
        batch_size=config.batch_size,
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
    )


class Measures:
    """The measures per mask, computed once: a mask of the effects table and the same mask on
    the compactness curve share them, and the neutral-text pass behind perplexity also serves
    the behavioural fluency measure."""

    def __init__(self, loaded: LoadedModel, data: PruningData, config: HarmfulWeightsConfig):
        self.loaded, self.data, self.config = loaded, data, config
        self.behaviour = behaviour_config(data, config)
        self._margins: dict = {}
        self._fluency: dict = {}
        self._answers: dict = {}

    @staticmethod
    def key(mask: PruneMask | None):
        return None if mask is None else (mask.label, mask.settings.get("q"), mask.n_pruned)

    def margins(self, mask: PruneMask | None, prefix: bool = False) -> dict[str, np.ndarray]:
        """Per-request margins: ``held_out`` always, ``prefix`` (the old pair) when asked."""
        got = self._margins.setdefault(self.key(mask), {})
        wanted = {"held_out": self.data.phrasing}
        if prefix:
            wanted["prefix"] = PREFIX_PHRASING
        todo = {k: v for k, v in wanted.items() if k not in got}
        if todo:
            with pruned(self.loaded.model, mask):
                got.update(
                    margins_by_phrasing(
                        self.loaded, self.data.eval_requests, todo, self.config.batch_size
                    )
                )
        return {k: got[k] for k in wanted}

    def fluency(self, mask: PruneMask | None) -> pd.DataFrame:
        key = self.key(mask)
        if key not in self._fluency:
            with pruned(self.loaded.model, mask):
                self._fluency[key] = fluency_items(self.loaded, self.behaviour)
        return self._fluency[key]

    def cheap(self, mask: PruneMask | None, prefix: bool = True) -> dict[str, float]:
        """Mean margins (held-out, and the old pair with ``prefix``) and perplexity."""
        margins = self.margins(mask, prefix)
        out = {"compliance_margin": float(np.mean(margins["held_out"]))}
        if prefix:
            out["compliance_margin_prefix"] = float(np.mean(margins["prefix"]))
        return out | {"perplexity": perplexity_of(self.fluency(mask))}

    def answers(self, mask: PruneMask | None, verify: bool = False) -> tuple[list[str], int]:
        """Greedy answers under ``mask`` and how many were generated under it. With ``verify``
        the unpruned answers are checked first (:func:`keeps_greedy`) and only the changed
        ones generated again; otherwise all are generated."""
        key = self.key(mask)
        if key in self._answers:
            return self._answers[key][0], self._answers[key][2]
        requests, n_new = list(self.data.eval_requests), self.config.max_new_tokens
        batch = self.config.batch_size
        if mask is not None and verify:
            texts, ids, _ = self._answers.get(None) or self._store(None, requests, n_new, batch)
            with pruned(self.loaded.model, mask):
                keep = keeps_greedy(self.loaded, requests, ids, batch)
                redo = [i for i, k in enumerate(keep) if not k]
                again = greedy_answers(self.loaded, [requests[i] for i in redo], n_new, batch)
            texts, ids = list(texts), list(ids)
            for i, text, new_ids in zip(redo, *again, strict=True):
                texts[i], ids[i] = text, new_ids
            self._answers[key] = (texts, ids, len(redo))
        else:
            with pruned(self.loaded.model, mask):
                self._store(key, requests, n_new, batch)
        return self._answers[key][0], self._answers[key][2]

    def _store(self, key, requests: Sequence[str], n_new: int, batch: int):
        texts, ids = greedy_answers(self.loaded, requests, n_new, batch)
        self._answers[key] = (texts, ids, len(requests))
        return self._answers[key]

    def asr(self, mask: PruneMask | None, verify: bool = False) -> float:
        return attack_success_rate(self.answers(mask, verify)[0])


def generations_table(measures: Measures, conditions: Sequence[Condition]) -> pd.DataFrame:
    """Greedy answers to every evaluation request per condition (unpruned answers once, with
    direction "none")."""
    rows = []
    for direction, condition, mask in conditions:
        if mask is None and direction != ORGAD:
            continue
        texts, _ = measures.answers(mask)
        rows += [
            {
                "model": measures.loaded.name,
                "direction": "none" if mask is None else direction,
                "condition": condition,
                "request": request,
                "answer": text,
                "harmful_by_keyword_rule": is_attack_success(text),
            }
            for request, text in zip(measures.data.eval_requests, texts, strict=True)
        ]
    return pd.DataFrame(rows)


def effects_table(measures: Measures, conditions: Sequence[Condition]) -> pd.DataFrame:
    """Per direction and condition: the mask's size, ASR, both margins and perplexity."""
    config = measures.config
    rows = []
    for direction, condition, mask in conditions:
        texts, _ = measures.answers(mask)
        rows.append(
            {
                "model": measures.loaded.name,
                "direction": direction,
                "condition": condition,
                "method": config.orgad_method if direction == ORGAD else config.wei_method,
                "p": config.p,
                "q": 0.0 if mask is None else config.q,
                "n_pruned": 0 if mask is None else mask.n_pruned,
                "fraction_pruned": 0.0 if mask is None else mask.fraction,
                "asr": attack_success_rate(texts),
                "n_eval": len(texts),
                **measures.cheap(mask),
            }
        )
    return pd.DataFrame(rows)


def compactness_table(measures: Measures, masks_by_q) -> pd.DataFrame:
    """The cheap measures over q (``masks_by_q``: (direction, q, mask) triples)."""
    return pd.DataFrame(
        {
            "model": measures.loaded.name,
            "direction": direction,
            "q": q,
            "n_pruned": mask.n_pruned,
            "fraction_pruned": mask.fraction,
            **measures.cheap(mask),
        }
        for direction, q, mask in masks_by_q
    )


def conditions_for(masks: dict[str, PruneMask], q: float) -> list[Condition]:
    """The effects table's conditions: each direction unpruned, then pruned at ``q``."""
    return [(d, UNPRUNED, None) for d in (ORGAD, WEI)] + [
        (d, f"pruned q={q:g}", masks[d]) for d in (ORGAD, WEI)
    ]
