"""Chapter 10's analysis: both pruning directions, compactness, unity, and the moral bridge.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)

- :func:`pruning_data` gathers the calibration sets once (the harmful completions need the
  base model that writes them);
- :func:`harmful_weights` scores, prunes and measures one model -> :class:`HarmfulWeightsResult`;
- :func:`moral_bridge` re-runs the moral diagnostics of chapters 02-05 under each pruning.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from moralkit.data.benchmarks import sample_rows
from moralkit.data.harmful import (
    advbench_prompts,
    align_short,
    benign_texts,
    calibration_prompts,
    harmful_completions,
)
from moralkit.evaluation.neutral_text import NEUTRAL_TEXTS
from moralkit.pruning.calibration import CalibrationSet
from moralkit.pruning.generation import cpu_threads, generate_greedy
from moralkit.pruning.importance import ImportanceConfig, ImportanceIndex, importance_index
from moralkit.pruning.masks import PruneMask, pruned, set_difference
from moralkit.pruning.measures import (
    attack_success_rate,
    compliance_margins,
    is_attack_success,
    perplexity,
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
from moralkit.threads import torch_threads

if TYPE_CHECKING:
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
    )


def _scores(loaded, data, config, progress) -> dict[str, ImportanceIndex]:
    """Every ranking one model needs, computed once (cached on disk). Target rankings keep
    the largest q asked for, retain rankings p: only what a selection can use is stored."""
    target_keep = max(config.q, *config.q_grid)

    def score(calib: CalibrationSet, method: str, keep: float = target_keep) -> ImportanceIndex:
        cfg = ImportanceConfig(method, config.scope, keep, config.max_tokens)
        return importance_index(loaded, calib, cfg, progress=progress)

    out = {
        "harmful": score(data.harmful, config.orgad_method),
        "retain": score(data.retain, config.retain_method, max(config.p, 1e-9)),
        "refusals": score(data.refusals, config.wei_method),
        "benign": score(data.benign, config.orgad_method),
    }
    for group in config.unity_groups:
        rows = [i for i, g in enumerate(data.groups) if g == group]
        out[f"group:{group}"] = score(
            data.harmful.subset(f"group-{group}", rows), config.orgad_method
        )
    order = np.random.default_rng(config.seed).permutation(len(data.harmful))
    for k, half in enumerate(np.array_split(order, 2)):
        out[f"half:{k}"] = score(
            data.harmful.subset(f"half-{k}", sorted(half.tolist())), config.orgad_method
        )
    return out


def _mask(scores, direction: str, config, q: float) -> PruneMask:
    target = "harmful" if direction == ORGAD else "refusals"
    return set_difference(scores[target], scores["retain"], config.p, q, label=direction)


def _cheap(loaded, data, mask) -> dict:
    with pruned(loaded.model, mask):
        margins = compliance_margins(loaded, data.eval_requests)
        ppl = perplexity(loaded, data.perplexity_texts)
    return {"compliance_margin": float(np.mean(margins)), "perplexity": ppl}


def _effects(loaded, data, scores, config, progress) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, answers = [], []
    conditions = [(d, UNPRUNED, None) for d in (ORGAD, WEI)]
    conditions += [
        (d, f"pruned q={config.q:g}", _mask(scores, d, config, config.q)) for d in (ORGAD, WEI)
    ]
    cache: dict[str, tuple[dict, list[str]]] = {}
    for direction, condition, mask in conditions:
        key = condition if mask is None else f"{direction}|{condition}"
        if key not in cache:
            with pruned(loaded.model, mask):
                texts = generate_greedy(
                    loaded, data.eval_requests, config.max_new_tokens, progress=progress
                )
            cache[key] = (_cheap(loaded, data, mask), texts)
        measured, texts = cache[key]
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
                "asr": attack_success_rate(texts),
                "n_eval": len(texts),
                **measured,
            }
        )
        if mask is None and direction == WEI:
            continue  # the unpruned answers are listed once
        for request, text in list(zip(data.eval_requests, texts, strict=True))[
            : config.n_answers_shown
        ]:
            answers.append(
                {
                    "model": loaded.name,
                    "direction": direction,
                    "condition": condition,
                    "request": request,
                    "answer": text,
                    "harmful_by_keyword_rule": is_attack_success(text),
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(answers)


def _compactness(loaded, data, scores, config, progress) -> pd.DataFrame:
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
                    **_cheap(loaded, data, mask),
                }
            )
    return pd.DataFrame(rows)


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
        masks = {d: _mask(scores, d, config, config.q) for d in (ORGAD, WEI)}
        effects, answers = _effects(loaded, data, scores, config, progress)
        tables = {
            "effects": effects,
            "compactness": _compactness(loaded, data, scores, config, progress),
            "unity": _unity(loaded, scores, config),
            "by_module": _by_module(loaded, masks),
            "answers": answers,
        }
    return HarmfulWeightsResult(tables, config), masks


def _bridge_configs(which: Sequence[str], pooling: str, n_resamples: int | None) -> dict:
    from moralkit.diagnostics import config_class

    configs = {}
    for name in which:
        fields = {f.name for f in dataclasses.fields(config_class(name))}
        settings: dict = {"pooling": pooling}
        if n_resamples is not None:
            settings.update(
                {f: n_resamples for f in ("n_permutations", "n_bootstrap") if f in fields}
            )
        configs[name] = settings
    return configs


def moral_bridge(
    loaded: LoadedModel,
    masks: Mapping[str, PruneMask],
    records: MoralRecords,
    layers=None,
    which: Sequence[str] = ("categorical", "gradient"),
    pooling: str = "mean",
    template: str | None = None,
    n_resamples: int | None = None,
    progress: bool = False,
) -> BridgeResult:
    """The moral diagnostics' headlines unpruned and under each mask, with differences.

    Activations are extracted under the pruning context with
    :func:`moralkit.activations.extract_activations` (never the activation cache, whose key is
    the unpruned weights' hash). ``n_resamples`` sets the diagnostics' permutation and
    bootstrap counts (None: their defaults); headline values do not depend on it.
    """
    from moralkit.activations import DEFAULT_TEMPLATE, extract_activations
    from moralkit.diagnostics import diagnose, headline_table

    options = {
        "layers": layers,
        "poolings": (pooling,),
        "template": template or DEFAULT_TEMPLATE,
        "progress": progress,
        "num_threads": None,  # the caller's torch_threads setting
    }
    configs = _bridge_configs(which, pooling, n_resamples)
    frames = []
    for condition, mask in [(UNPRUNED, None), *masks.items()]:
        with pruned(loaded.model, mask):
            acts = extract_activations(loaded, records.texts, **options)
        results = diagnose(acts, records, which=which, configs=configs)
        frames.append(headline_table(results, condition=condition))
    table = pd.concat(frames, ignore_index=True)
    table["model"] = loaded.name
    keys = ["model", "diagnostic", "metric"]
    base = table[table["condition"] == UNPRUNED].set_index(keys)["value"]
    table["unpruned_value"] = table.set_index(keys).index.map(base)
    table["difference"] = table["value"] - table["unpruned_value"]
    return BridgeResult({"bridge": table})


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
