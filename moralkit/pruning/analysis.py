"""Chapter 10's analysis: both pruning directions, compactness, unity, and the moral bridge.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)

- :func:`pruning_data` gathers the calibration sets once (the harmful completions need the
  base model that writes them);
- :func:`harmful_weights` scores, prunes and measures one model -> :class:`HarmfulWeightsResult`;
- :func:`~moralkit.pruning.bridge.moral_bridge` re-runs the moral diagnostics of chapters
  02-05 under each pruning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from moralkit.data.benchmarks import ethics_commonsense, moral_stories, sample_rows
from moralkit.data.harmful import advbench_prompts, align_short, benign_texts, calibration_prompts
from moralkit.evaluation.behaviour import BehaviourConfig, fluency_items
from moralkit.evaluation.neutral_text import NEUTRAL_TEXTS
from moralkit.evaluation.schema import user_benchmarks
from moralkit.pruning.bridge import moral_bridge
from moralkit.pruning.calibration import CalibrationSet
from moralkit.pruning.generation import cpu_threads, generate_greedy, harmful_completions
from moralkit.pruning.importance import (
    ImportanceConfig,
    ImportanceIndex,
    importance_index,
    importance_indices,
)
from moralkit.pruning.masks import PruneMask, pruned, set_difference
from moralkit.pruning.measures import (
    attack_success_rate,
    compliance_margins,
    is_attack_success,
    unity_table,
)
from moralkit.pruning.results import (
    ORGAD,
    UNPRUNED,
    WEI,
    BridgeResult,
    HarmfulWeightsConfig,
    HarmfulWeightsResult,
)
from moralkit.pruning.utility import behaviour_under_masks, perplexity_of, utility_table
from moralkit.threads import torch_threads

if TYPE_CHECKING:
    from moralkit.evaluation.schema import Benchmark
    from moralkit.models import LoadedModel
    from moralkit.records import MoralRecords


@dataclass(frozen=True)
class PruningData:
    """The texts of one run: evaluation requests and every calibration set."""

    eval_requests: tuple[str, ...]
    harmful: CalibrationSet  # Orgad target: harmful completions of calibration prompts
    groups: tuple[str, ...]  # the harm type of each harmful example
    refusals: CalibrationSet  # Wei target: align_short refusals
    retain: CalibrationSet  # benign retain text (Moral Stories)
    benign: CalibrationSet  # benign baseline for unity (ETHICS scenarios)
    perplexity_texts: tuple[str, ...]
    completions: pd.DataFrame
    benchmarks: tuple[Benchmark, ...] = ()  # chapter 08's offline behavioural measures


def pruning_data(
    config: HarmfulWeightsConfig,
    completion_model: str | LoadedModel | None = None,
    retain_texts: Sequence[str] | None = None,
    progress: bool = False,
) -> PruningData:
    """Calibration and evaluation texts.

    ``completion_model`` writes the harmful completions (default ``config.completion_model``,
    loaded only when its cached completions are missing); ``retain_texts`` replaces the Moral
    Stories retain set.
    """
    eval_requests = tuple(advbench_prompts()[: config.n_eval])
    pool = calibration_prompts(config.unity_per_group, config.unity_groups, config.seed)
    completions = harmful_completions(
        completion_model or config.completion_model,
        pool["index"].tolist(),
        config.completion_tokens,
        progress,
        config.num_threads,
    )
    harmful = CalibrationSet(
        "harmful", tuple(completions["prompt"]), tuple(completions["response"])
    )
    refusal_table = align_short()
    refusal_table = refusal_table[~refusal_table["request"].isin(eval_requests)]
    refusal_table = sample_rows(refusal_table, config.n_calibration, config.seed)
    refusals = CalibrationSet(
        "refusals", tuple(refusal_table["request"]), tuple(refusal_table["response"])
    )
    retain = CalibrationSet.from_texts(
        "retain", retain_texts or benign_texts("moral-stories", config.n_retain, config.seed)
    )
    benign = CalibrationSet.from_texts(
        "benign", benign_texts("ethics", config.unity_per_group, config.seed)
    )
    return PruningData(
        eval_requests,
        harmful,
        tuple(completions["group"]),
        refusals,
        retain,
        benign,
        tuple(NEUTRAL_TEXTS[: config.n_perplexity]),
        completions,
        _benchmarks(config),
    )


def _benchmarks(config: HarmfulWeightsConfig) -> tuple[Benchmark, ...]:
    """Chapter 08's benchmarks; a size of 0 leaves a set out. Moral Stories from the dev split:
    the retain set comes from the test split. Then the user's benchmark files, whole."""
    from moralkit.evaluation.schema import load_benchmark

    sets = [
        ("moral-stories", moral_stories("dev"), config.n_moral_stories),
        ("ethics", ethics_commonsense("test"), config.n_ethics),
        ("ethics-hard", ethics_commonsense("test-hard"), config.n_ethics),
    ]
    built_in = [load_benchmark(sample_rows(t, n, config.seed), name) for name, t, n in sets if n]
    return (*built_in, *user_benchmarks(config.benchmarks))


def _scores(loaded, data, config, progress) -> dict[str, ImportanceIndex]:
    """Every ranking one model needs, computed once (cached on disk). Target rankings keep
    the largest q asked for, retain rankings p: only what a selection can use is stored. The
    harm-type groups and random halves are subsets of the harmful set: their scores come from
    the same backward passes."""
    target_keep = max(config.q, *config.q_grid)

    def settings(method: str, keep: float = target_keep) -> ImportanceConfig:
        return ImportanceConfig(method, config.scope, keep, config.max_tokens)

    def score(calib: CalibrationSet, method: str, keep: float = target_keep) -> ImportanceIndex:
        return importance_index(loaded, calib, settings(method, keep), progress=progress)

    parts: dict[str, list[int]] = {"harmful": list(range(len(data.harmful)))}
    for group in config.unity_groups:
        parts[f"group-{group}"] = [i for i, g in enumerate(data.groups) if g == group]
    order = np.random.default_rng(config.seed).permutation(len(data.harmful))
    for k, half in enumerate(np.array_split(order, 2)):
        parts[f"half-{k}"] = sorted(half.tolist())
    harmful = importance_indices(
        loaded, data.harmful, parts, settings(config.orgad_method), progress=progress
    )
    out = {name.replace("-", ":", 1): index for name, index in harmful.items()}
    out["retain"] = score(data.retain, config.retain_method, max(config.p, 1e-9))
    out["refusals"] = score(data.refusals, config.wei_method)
    out["benign"] = score(data.benign, config.orgad_method)
    return out


def _mask(scores, direction: str, config, q: float) -> PruneMask:
    target = "harmful" if direction == ORGAD else "refusals"
    return set_difference(scores[target], scores["retain"], config.p, q, label=direction)


def _behaviour_config(data: PruningData, config: HarmfulWeightsConfig) -> BehaviourConfig:
    return BehaviourConfig(
        fluency_texts=data.perplexity_texts,
        batch_size=config.batch_size,
        n_bootstrap=config.n_bootstrap,
        seed=config.seed,
    )


class _Measures:
    """The cheap measures per mask, computed once: a mask of the effects table and the same
    mask on the compactness curve (q = the headline q) share them, and the neutral-text pass
    behind perplexity also serves the behavioural fluency measure."""

    def __init__(self, loaded, data: PruningData, config: HarmfulWeightsConfig) -> None:
        self.loaded, self.data, self.config = loaded, data, config
        self.behaviour = _behaviour_config(data, config)
        self._done: dict = {}

    @staticmethod
    def key(mask: PruneMask | None):
        return None if mask is None else (mask.label, mask.settings.get("q"), mask.n_pruned)

    def fluency(self, mask: PruneMask | None) -> pd.DataFrame:
        return self._measure(mask)["fluency"]

    def cheap(self, mask: PruneMask | None) -> dict:
        got = self._measure(mask)
        return {k: got[k] for k in ("compliance_margin", "perplexity")}

    def _measure(self, mask: PruneMask | None) -> dict:
        key = self.key(mask)
        if key not in self._done:
            with pruned(self.loaded.model, mask):
                margins = compliance_margins(
                    self.loaded, self.data.eval_requests, self.config.batch_size
                )
                fluency = fluency_items(self.loaded, self.behaviour)
            self._done[key] = {
                "compliance_margin": float(np.mean(margins)),
                "perplexity": perplexity_of(fluency),
                "fluency": fluency,
            }
        return self._done[key]


def _conditions(scores, config) -> list[tuple[str, str, PruneMask | None]]:
    conditions = [(d, UNPRUNED, None) for d in (ORGAD, WEI)]
    return conditions + [
        (d, f"pruned q={config.q:g}", _mask(scores, d, config, config.q)) for d in (ORGAD, WEI)
    ]


def _generations(loaded, data, conditions, config, progress) -> pd.DataFrame:
    """Greedy answers to every evaluation request per condition (unpruned answers once, with
    direction "none")."""
    rows = []
    for direction, condition, mask in conditions:
        if mask is None and direction != ORGAD:
            continue
        with pruned(loaded.model, mask):
            texts = generate_greedy(
                loaded,
                data.eval_requests,
                config.max_new_tokens,
                config.batch_size,
                progress=progress,
            )
        rows += [
            {
                "model": loaded.name,
                "direction": "none" if mask is None else direction,
                "condition": condition,
                "request": request,
                "answer": text,
                "harmful_by_keyword_rule": is_attack_success(text),
            }
            for request, text in zip(data.eval_requests, texts, strict=True)
        ]
    return pd.DataFrame(rows)


def _effects(loaded, conditions, generations, measures, config) -> pd.DataFrame:
    rows = []
    for direction, condition, mask in conditions:
        shown = generations[
            (generations["condition"] == condition)
            & generations["direction"].isin(["none" if mask is None else direction])
        ]
        rows.append(
            {
                "model": loaded.name,
                "direction": direction,
                "condition": condition,
                "method": config.orgad_method if direction == ORGAD else config.wei_method,
                "p": config.p,
                "q": 0.0 if mask is None else config.q,
                "n_pruned": 0 if mask is None else mask.n_pruned,
                "fraction_pruned": 0.0 if mask is None else mask.fraction,
                "asr": attack_success_rate(list(shown["answer"])),
                "n_eval": len(shown),
                **measures.cheap(mask),
            }
        )
    return pd.DataFrame(rows)


def _compactness(loaded, scores, measures, config) -> pd.DataFrame:
    rows = []
    for direction in (ORGAD, WEI):
        for q in sorted(config.q_grid):
            mask = _mask(scores, direction, config, q)
            rows.append(
                {
                    "model": loaded.name,
                    "direction": direction,
                    "q": q,
                    "n_pruned": mask.n_pruned,
                    "fraction_pruned": mask.fraction,
                    **measures.cheap(mask),
                }
            )
    return pd.DataFrame(rows)


def _utility(loaded, data, conditions, measures, config) -> pd.DataFrame:
    masks = {d: m for d, _, m in conditions if m is not None}
    names = {d: c for d, c, m in conditions if m is not None}
    if not data.benchmarks:  # behavioural measures switched off: perplexity only
        rows = [(UNPRUNED, "none", None), *[(names[d], d, m) for d, m in masks.items()]]
        return pd.DataFrame(
            {
                "model": loaded.name,
                "direction": direction,
                "condition": condition,
                "measure": "neutral text",
                "metric": "perplexity",
                "value": measures.cheap(mask)["perplexity"],
            }
            for condition, direction, mask in rows
        )
    behaviour = behaviour_under_masks(
        loaded, data.benchmarks, masks, measures.behaviour, measures.fluency
    )
    return utility_table(behaviour, names)


def _unity(loaded, scores, config) -> pd.DataFrame:
    def mask(name: str) -> PruneMask:
        return set_difference(
            scores[name], scores["retain"], config.p, config.q, label=name.replace(":", " ")
        )

    groups = {g: mask(f"group:{g}") for g in config.unity_groups}
    table = unity_table(groups, [mask("half:0"), mask("half:1")], mask("benign"))
    table.insert(0, "model", loaded.name)
    return table


_LAYER = re.compile(r"\.(\d+)\.(.+)$")


def _by_module(loaded, masks: Mapping[str, PruneMask]) -> pd.DataFrame:
    rows = []
    for direction, mask in masks.items():
        for name, idx in mask.indices.items():
            layer, module = _LAYER.search(name).groups()
            rows.append(
                {
                    "model": loaded.name,
                    "direction": direction,
                    "layer": int(layer),
                    "module": module,
                    "n_pruned": len(idx),
                    "fraction": len(idx) / np.prod(mask.shapes[name]),
                }
            )
    return pd.DataFrame(rows)


def harmful_weights(
    loaded: LoadedModel,
    data: PruningData,
    config: HarmfulWeightsConfig | None = None,
    progress: bool = False,
) -> tuple[HarmfulWeightsResult, dict[str, PruneMask]]:
    """Score, prune and measure one model in both directions (paper §7(b)).

    Returns the result and the two headline masks (``{ORGAD: ..., WEI: ...}``, pruning ``q``
    of the target ranking minus ``p`` of the retain ranking) for :func:`moral_bridge`.
    """
    config = config or HarmfulWeightsConfig()
    with torch_threads(cpu_threads(loaded, config.num_threads)):
        scores = _scores(loaded, data, config, progress)
        conditions = _conditions(scores, config)
        masks = {d: m for d, _, m in conditions if m is not None}
        measures = _Measures(loaded, data, config)
        generations = _generations(loaded, data, conditions, config, progress)
        shown = generations.groupby(["direction", "condition"], sort=False).head(
            config.n_answers_shown
        )
        tables = {
            "effects": _effects(loaded, conditions, generations, measures, config),
            "compactness": _compactness(loaded, scores, measures, config),
            "utility": _utility(loaded, data, conditions, measures, config),
            "unity": _unity(loaded, scores, config),
            "by_module": _by_module(loaded, masks),
            "answers": shown.reset_index(drop=True),
            "generations": generations,
        }
    return HarmfulWeightsResult(tables, config), masks


def completion_samples(data: PruningData, n: int = 3, width: int = 160) -> pd.DataFrame:
    """A few generated harmful completions, cut to ``width`` characters, with provenance."""
    table = data.completions.head(n).copy()
    table["response"] = [
        r if len(r) <= width else r[:width].rsplit(" ", 1)[0] + " […]" for r in table["response"]
    ]
    return table[["index", "group", "prompt", "response", "generator"]].rename(
        columns={"index": "advbench_line"}
    )


def analyse_models(
    names: Sequence[str],
    config: HarmfulWeightsConfig,
    data: PruningData,
    records: MoralRecords,
    load: Callable[[str], LoadedModel] | None = None,
    bridge_layers=None,
    bridge_diagnostics: Sequence[str] = ("categorical", "gradient"),
    pooling: str = "mean",
    template: str | None = None,
    n_resamples: int | None = None,
) -> tuple[HarmfulWeightsResult, BridgeResult]:
    """:func:`harmful_weights` and :func:`moral_bridge` for each model, results combined.

    Models are loaded one at a time with ``load`` (a chapter passes ``ch.load_model``, which
    records each model in the provenance; default :func:`moralkit.models.load_model`).
    """
    from moralkit.models import load_model

    results, bridges = [], []
    for name in names:
        model = (load or load_model)(name)
        result, masks = harmful_weights(model, data, config)
        with torch_threads(cpu_threads(model, config.num_threads)):
            bridge = moral_bridge(
                model,
                masks,
                records,
                bridge_layers,
                bridge_diagnostics,
                pooling,
                template,
                n_resamples,
            )
        results.append(result)
        bridges.append(bridge)
    return HarmfulWeightsResult.concat(results), BridgeResult.concat(bridges)
