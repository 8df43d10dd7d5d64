"""Chapter 10's analysis: both pruning directions, compactness, unity, controls, the bridge.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)

- :func:`pruning_data` gathers the calibration sets once (the harmful and the format-matched
  benign completions need the base model that writes them) and checks the margin's held-out
  phrasings against every calibration string;
- :func:`prune_and_measure` scores, prunes and measures one model -> :class:`HarmfulWeightsResult`:
  the headline masks (:mod:`~moralkit.pruning.measurement`), their random-mask controls
  (:mod:`~moralkit.pruning.random_masks`) and the resampled unity (:mod:`~moralkit.pruning.unity`);
- :func:`~moralkit.pruning.pruned_diagnostics.pruned_diagnostics` re-runs the moral
  diagnostics of chapters 02-05 under each pruning.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from moralkit.data.benchmarks import ethics_commonsense, moral_stories, sample_rows
from moralkit.data.harmful import (
    BENIGN_GROUP,
    advbench_prompts,
    align_short,
    benign_requests,
    benign_texts,
    calibration_prompts,
)
from moralkit.evaluation.neutral_text import NEUTRAL_TEXTS
from moralkit.evaluation.schema import user_benchmarks
from moralkit.pruning.calibration import CalibrationSet
from moralkit.pruning.candidates import scores_with_candidates
from moralkit.pruning.generation import benign_completions, cpu_threads, harmful_completions
from moralkit.pruning.importance import ImportanceConfig, ImportanceIndex, importance_index
from moralkit.pruning.masks import PruneMask, set_difference
from moralkit.pruning.measurement import (
    Measures,
    compactness_table,
    conditions_for,
    effects_table,
    generations_table,
)
from moralkit.pruning.phrasings import HELD_OUT_PHRASING, Phrasing, held_out, held_out_table
from moralkit.pruning.pruned_diagnostics import pruned_diagnostics
from moralkit.pruning.random_masks import random_masks, random_tables
from moralkit.pruning.results import (
    ORGAD,
    UNPRUNED,
    WEI,
    HarmfulWeightsConfig,
    HarmfulWeightsResult,
    PrunedDiagnosticsResult,
)
from moralkit.pruning.unity import unity_tables
from moralkit.pruning.utility import behaviour_under_masks, utility_table
from moralkit.threads import torch_threads

if TYPE_CHECKING:
    from moralkit.evaluation.schema import Benchmark
    from moralkit.models import LoadedModel
    from moralkit.records import MoralRecords


@dataclass(frozen=True)
class PruningData:
    """The texts of one run: evaluation requests and every calibration set.

    ``benign`` is the format-matched benign set (requests in the harmful requests' format with
    completions by the same model and prefix); ``benign_text`` the plain-text benign set shown
    beside it (None: not scored). ``phrasing`` holds the margin's held-out continuations that
    passed the check against every calibration string (``phrasing_check``).
    """

    eval_requests: tuple[str, ...]
    harmful: CalibrationSet  # Orgad target: harmful completions of calibration prompts
    groups: tuple[str, ...]  # the harm type of each harmful example
    refusals: CalibrationSet  # Wei target: align_short refusals
    retain: CalibrationSet  # benign retain text (Moral Stories)
    benign: CalibrationSet  # benign requests + completions, the harmful set's format
    perplexity_texts: tuple[str, ...]
    completions: pd.DataFrame
    benchmarks: tuple[Benchmark, ...] = ()  # chapter 08's offline behavioural measures
    benign_text: CalibrationSet | None = None  # plain benign text (ETHICS), for comparison
    phrasing: Phrasing = HELD_OUT_PHRASING
    phrasing_check: pd.DataFrame | None = None

    def calibration_strings(self) -> list[str]:
        """Every prompt and response any calibration set holds."""
        sets = (self.harmful, self.refusals, self.retain, self.benign, self.benign_text)
        return [t for c in sets if c is not None for t in (*c.prompts, *c.responses) if t]


def pruning_data(
    config: HarmfulWeightsConfig,
    completion_model: str | LoadedModel | None = None,
    retain_texts: Sequence[str] | None = None,
    progress: bool = False,
) -> PruningData:
    """Calibration and evaluation texts.

    ``completion_model`` writes the harmful and the benign completions (default
    ``config.completion_model``, loaded only when its cached completions are missing);
    ``retain_texts`` replaces the Moral Stories retain set.
    """
    writer = completion_model or config.completion_model
    eval_requests = tuple(advbench_prompts()[: config.n_eval])
    pool = calibration_prompts(config.unity_per_group, config.unity_groups, config.seed)
    args = (config.completion_tokens, progress, config.num_threads)
    completions = harmful_completions(writer, pool["index"].tolist(), *args)
    benign_table = benign_requests(config.unity_per_group, config.seed)
    benign = benign_completions(writer, benign_table, *args)
    refusal_table = align_short()
    refusal_table = refusal_table[~refusal_table["request"].isin(eval_requests)]
    refusal_table = sample_rows(refusal_table, config.n_calibration, config.seed)
    retain = retain_texts or benign_texts("moral-stories", config.n_retain, config.seed)
    data = PruningData(
        eval_requests,
        _pairs("harmful", completions),
        tuple(completions["group"]),
        CalibrationSet(
            "refusals", tuple(refusal_table["request"]), tuple(refusal_table["response"])
        ),
        CalibrationSet.from_texts("retain", retain),
        _pairs("benign", benign),
        tuple(NEUTRAL_TEXTS[: config.n_perplexity]),
        pd.concat([completions, benign], ignore_index=True),
        _benchmarks(config),
        CalibrationSet.from_texts(
            "benign-text", benign_texts("ethics", config.unity_per_group, config.seed)
        ),
    )
    strings = data.calibration_strings()
    return replace(
        data,
        phrasing=held_out(HELD_OUT_PHRASING, strings),
        phrasing_check=held_out_table(HELD_OUT_PHRASING, strings),
    )


def _phrasing_check(data: PruningData) -> pd.DataFrame:
    """The held-out check of the margin's phrasings against the run's calibration strings."""
    if data.phrasing_check is not None:
        return data.phrasing_check
    return held_out_table(data.phrasing, data.calibration_strings())


def _pairs(name: str, table: pd.DataFrame) -> CalibrationSet:
    return CalibrationSet(name, tuple(table["prompt"]), tuple(table["response"]))


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


def _scores(loaded, data, config, progress) -> tuple[dict[str, ImportanceIndex], dict]:
    """Every ranking one model needs, computed once (cached on disk), and the per-prompt
    candidates of the harmful and benign sets (:mod:`moralkit.pruning.unity`). Target rankings
    keep the largest q asked for, retain rankings p: only what a selection can use is stored.
    The harm-type rankings are subsets of the harmful set: their scores come from the same
    backward passes."""
    target_keep = max(config.q, *config.q_grid)

    def settings(method: str, keep: float = target_keep) -> ImportanceConfig:
        return ImportanceConfig(method, config.scope, keep, config.max_tokens)

    def score(calib: CalibrationSet, method: str, keep: float = target_keep) -> ImportanceIndex:
        return importance_index(loaded, calib, settings(method, keep), progress=progress)

    parts: dict[str, list[int]] = {"harmful": list(range(len(data.harmful)))}
    for group in config.unity_groups:
        parts[f"group-{group}"] = [i for i, g in enumerate(data.groups) if g == group]
    orgad = settings(config.orgad_method)
    found = config.q, config.candidate_factor, progress
    harmful, harm_cands = scores_with_candidates(loaded, data.harmful, parts, orgad, *found)
    benign_parts = {"benign": list(range(len(data.benign)))}
    benign, benign_cands = scores_with_candidates(loaded, data.benign, benign_parts, orgad, *found)
    out = {name.replace("-", ":", 1): index for name, index in harmful.items()}
    out["benign"] = benign["benign"]
    out["retain"] = score(data.retain, config.retain_method, max(config.p, 1e-9))
    out["refusals"] = score(data.refusals, config.wei_method)
    if data.benign_text is not None:
        out["benign-text"] = score(data.benign_text, config.orgad_method)
    return out, {"harmful": harm_cands, "benign": benign_cands}


def _mask(scores, direction: str, config, q: float) -> PruneMask:
    target = "harmful" if direction == ORGAD else "refusals"
    return set_difference(scores[target], scores["retain"], config.p, q, label=direction)


def _utility(loaded, data, masks, randoms, measures) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 08's measures under each headline mask (the ``utility`` table) and every arm's
    values (index: arm label; columns: benchmarks) from one call, random masks included: the
    unpruned pass is shared."""
    names = {d: f"pruned q={measures.config.q:g}" for d in masks}
    if not data.benchmarks:  # behavioural measures switched off: perplexity only
        rows = [(UNPRUNED, "none", None), *[(names[d], d, m) for d, m in masks.items()]]
        table = pd.DataFrame(
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
        return table, pd.DataFrame()
    drawn = [m.label for ms in randoms.values() for m in ms]
    every = {**masks, **{m.label: m for ms in randoms.values() for m in ms}}
    behaviour = behaviour_under_masks(
        loaded, data.benchmarks, every, measures.behaviour, measures.fluency
    )
    values = behaviour["summary"].pivot(index="arm", columns="benchmark", values="value")
    behaviour.tables = {  # the utility table shows the headline masks only
        k: v[~v["arm"].isin(drawn)] if "arm" in v else v for k, v in behaviour.tables.items()
    }
    return utility_table(behaviour, names), values


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


def prune_and_measure(
    loaded: LoadedModel,
    data: PruningData,
    config: HarmfulWeightsConfig | None = None,
    progress: bool = False,
) -> tuple[HarmfulWeightsResult, dict[str, PruneMask]]:
    """Score, prune and measure one model in both directions (paper §7(b)), with the random-mask
    controls and the resampled unity.

    Returns the result and the two headline masks (``{ORGAD: ..., WEI: ...}``, pruning ``q``
    of the target ranking minus ``p`` of the retain ranking) for :func:`pruned_diagnostics`.
    """
    config = config or HarmfulWeightsConfig()
    with torch_threads(cpu_threads(loaded, config.num_threads)):
        scores, candidates = _scores(loaded, data, config, progress)
        masks = {d: _mask(scores, d, config, config.q) for d in (ORGAD, WEI)}
        conditions = conditions_for(masks, config.q)
        measures = Measures(loaded, data, config)
        generations = generations_table(measures, conditions)
        curve = [(d, q, _mask(scores, d, config, q)) for d in (ORGAD, WEI) for q in config.q_grid]
        protected = scores["retain"].membership(config.p) if config.p > 0 else None
        chosen = {d: masks[d] for d in config.random_directions}
        randoms = random_masks(chosen, config.n_random_masks, config.seed, protected)
        utility, per_arm = _utility(loaded, data, masks, randoms, measures)
        tables = {
            "effects": effects_table(measures, conditions),
            "compactness": compactness_table(measures, sorted(curve, key=lambda c: c[:2])),
            "utility": utility,
            **random_tables(measures, masks, randoms, per_arm),
            **unity_tables(loaded.name, scores, candidates, data, config),
            "phrasings": _phrasing_check(data).assign(model=loaded.name),
            "by_module": _by_module(loaded, masks),
            "answers": generations.groupby(["direction", "condition"], sort=False)
            .head(config.n_answers_shown)
            .reset_index(drop=True),
            "generations": generations,
        }
    return HarmfulWeightsResult(tables, config), masks


def completion_samples(data: PruningData, n: int = 3, width: int = 160) -> pd.DataFrame:
    """The first ``n`` harmful and ``n`` benign completions, cut to ``width`` characters, with
    their source line (AdvBench, or the Social-Chem-101 subset for benign requests)."""
    table = data.completions
    benign = table["group"] == BENIGN_GROUP
    table = pd.concat([table[~benign].head(n), table[benign].head(n)], ignore_index=True)
    table["response"] = [
        r if len(r) <= width else r[:width].rsplit(" ", 1)[0] + " […]" for r in table["response"]
    ]
    table["source"] = np.where(table["group"] == BENIGN_GROUP, "Social-Chem-101", "AdvBench")
    return table[["source", "index", "group", "prompt", "response", "generator"]].rename(
        columns={"index": "source_line"}
    )


def harmful_weights(
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
) -> tuple[HarmfulWeightsResult, PrunedDiagnosticsResult]:
    """:func:`prune_and_measure` and :func:`pruned_diagnostics` for each model, results combined.

    Models are loaded one at a time with ``load`` (a chapter passes ``ch.load_model``, which
    records each model in the provenance; default :func:`moralkit.models.load_model`).
    """
    from moralkit.models import load_model

    results, bridges = [], []
    for name in names:
        model = (load or load_model)(name)
        result, masks = prune_and_measure(model, data, config)
        with torch_threads(cpu_threads(model, config.num_threads)):
            bridge = pruned_diagnostics(
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
    return HarmfulWeightsResult.concat(results), PrunedDiagnosticsResult.concat(bridges)
