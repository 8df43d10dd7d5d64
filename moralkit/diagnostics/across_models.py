"""Comparing diagnostics across models: scale, alignment and offline conditions.

(paper §2.6, §3.2; book: Methods › Across models, methods/across-models.md) The paper's claim
that indifference "persists regardless of scaling, architecture, or safety alignment" rests on
visual comparison only; no test script exists. :func:`compare_models` turns each model's
diagnostic results into tidy tables and adds the statistics of
:mod:`moralkit.diagnostics.model_statistics`; :func:`across_models` is chapter 06's recipe
(extract, diagnose, offline conditions, compare) from the chapter's parameters.

Curves schema (one row per model x condition x diagnostic x metric x layer)::

    model, condition, contrast, diagnostic, metric, layer, relative_depth, value

``condition`` is one of :data:`~moralkit.diagnostics.conditions.CONDITIONS` (``trained`` for
the models themselves) and ``contrast`` names the pairing an offline condition belongs to
(empty for the models themselves). Metric names are those of the results' ``headline()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics import diagnose, diagnostic_configs, headline_table
from moralkit.diagnostics.categorical import CategoricalResult
from moralkit.diagnostics.conditions import (
    CONTRASTS,
    ConditionConfig,
    ConditionRun,
    run_conditions,
)
from moralkit.diagnostics.dimensional import DimensionalResult
from moralkit.diagnostics.gradient import GradientResult
from moralkit.diagnostics.model_statistics import (
    ALIGNMENT_CONTRASTS,
    alignment_test,
    paired_condition_test,
    paired_differences,
    scaling_test,
)
from moralkit.diagnostics.no_effect import alignment_claim, claimed_rows, scale_claim
from moralkit.diagnostics.structural import StructuralResult
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult, ClaimValue, claim_settings, config_from_parameters

#: the diagnostics chapter 06 compares across models (their curves and headlines)
ACROSS_MODEL_DIAGNOSTICS: tuple[str, ...] = ("categorical", "gradient")
CURVE_COLUMNS: tuple[str, ...] = (
    "model",
    "condition",
    "contrast",
    "diagnostic",
    "metric",
    "layer",
    "relative_depth",
    "value",
)


@dataclass(frozen=True)
class AcrossModelsConfig:
    """Settings of the across-model comparison (paper §3.2; book: Methods › Across models).

    ``contrasts``: the within-family (treated, reference) stages of the alignment test.
    ``n_sign_flips`` / ``n_test_bootstrap``: resampling of the paired tests and the scaling
    test's interval; ``seed`` their seed.
    """

    contrasts: tuple[tuple[str, str], ...] = ALIGNMENT_CONTRASTS
    n_sign_flips: int = 10000
    n_test_bootstrap: int = 2000
    seed: int = 0


# ---------------------------------------------------------------------------- curves
def _melt(table: pd.DataFrame, diagnostic: str, metrics: Mapping[str, str]) -> pd.DataFrame:
    """Per-layer columns (``metrics``: column -> metric name) into the long curves form."""
    long = table.rename(columns=dict(metrics)).melt(
        id_vars=["model", "layer", "relative_depth"],
        value_vars=list(metrics.values()),
        var_name="metric",
        value_name="value",
    )
    long["diagnostic"] = diagnostic
    return long


def result_curves(result: AnalysisResult) -> pd.DataFrame:
    """Per-layer curves of one diagnostic result, with the metric names of its headline."""
    if isinstance(result, CategoricalResult):
        metrics = {
            "mean_offdiag_cosine": "mean_offdiag_cosine",
            "mean_virtue_vice_cosine": "virtue_vice_cosine",
        }
        return _melt(result["by_layer"], "categorical", metrics)
    if isinstance(result, GradientResult):
        rows = result["by_layer"][result["by_layer"]["category"] == "overall"]
        wide = rows.pivot_table(
            index=["model", "layer", "relative_depth"], columns="variant", values="spearman"
        ).reset_index()
        variants = [c for c in wide.columns if c not in ("model", "layer", "relative_depth")]
        return _melt(wide, "gradient", {v: f"spearman_{v}" for v in variants})
    if isinstance(result, StructuralResult):
        ari = result.metric("ARI", "MFT15", "non_noise")
        return _melt(ari, "structural", {"value": "ari_mft15", "noise_ratio": "noise_ratio"})
    if isinstance(result, DimensionalResult):
        t = result["r2"]
        t = t[(t["control"] == "none") & (t["dimension"] == "overall")]
        t = t[t["weights"] == "trained"]
        wide = t.pivot_table(
            index=["model", "layer", "relative_depth"], columns="probe", values="r2"
        ).reset_index()
        probes = [c for c in wide.columns if c not in ("model", "layer", "relative_depth")]
        return _melt(wide, "dimensional", {p: f"r2_{p}" for p in probes})
    raise TypeError(f"no curves defined for {type(result).__name__}")


def curves_table(
    results: Mapping[str, AnalysisResult] | Sequence[AnalysisResult],
    condition: str = "trained",
    contrast: str = "",
) -> pd.DataFrame:
    """Curves (:data:`CURVE_COLUMNS`) of several results under one condition."""
    values = list(results.values()) if isinstance(results, Mapping) else list(results)
    frames = [result_curves(r) for r in values]
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    table = pd.concat(frames, ignore_index=True)
    table["condition"], table["contrast"] = condition, contrast
    return table[list(CURVE_COLUMNS)]


# ---------------------------------------------------------------------------- conditions
def compare_conditions(
    curves: pd.DataFrame, n_sign_flips: int = 10000, seed: int = 0
) -> pd.DataFrame:
    """Paired comparison of each contrast's two conditions, **paired over layers**.

    ``curves`` is a condition-curves table (model, condition, contrast, ...). For every model
    x contrast x diagnostic x metric, condition a minus condition b (:data:`CONTRASTS`) at the
    same layers: :func:`paired_condition_test`'s fields and ``n_pairs`` = layers.
    """
    rows = []
    keys = ["model", "contrast", "diagnostic", "metric"]
    for (model, contrast, diagnostic, metric), g in curves.groupby(keys, sort=False):
        if contrast not in CONTRASTS:
            continue
        cond_a, cond_b = CONTRASTS[contrast]
        a = g[g["condition"] == cond_a].set_index("layer")["value"]
        b = g[g["condition"] == cond_b].set_index("layer")["value"]
        if a.empty or b.empty:
            continue
        test = paired_condition_test(a, b, n_permutations=n_sign_flips, seed=seed)
        rows.append(
            {
                "comparison": f"{model}: {cond_a} − {cond_b}",
                "model": model,
                "contrast": contrast,
                "condition_a": cond_a,
                "condition_b": cond_b,
                "diagnostic": diagnostic,
                "metric": metric,
                "paired_over": "layers",
                **test,
            }
        )
    return pd.DataFrame(rows)


def condition_curves(runs: Sequence[ConditionRun]) -> pd.DataFrame:
    """Curves of every condition run, typed by ``condition`` and ``contrast``."""
    frames = [curves_table(r.results, r.condition, r.contrast) for r in runs]
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------- groups
def model_groups(models: Sequence[str]) -> pd.DataFrame:
    """Family, alignment stage and size of registry models, for the paper §3.2 comparisons.

    Returns columns model, family (registry family plus size, e.g. "Qwen3 8.2B": the unit
    within which Base / Instruct / Guard are paired), stage (the paper's group, lower case:
    base / instruct / guard / offline), params_b and architecture. Unknown names raise.
    """
    from moralkit.models.registry import get_model_spec

    rows = []
    for name in models:
        spec = get_model_spec(name)
        rows.append(
            {
                "model": name,
                "family": f"{spec.family} {spec.params_b:g}B",
                "stage": spec.group.lower(),
                "params_b": spec.params_b,
                "architecture": spec.architecture,
            }
        )
    return pd.DataFrame(rows, columns=["model", "family", "stage", "params_b", "architecture"])


def offline_models(groups: pd.DataFrame) -> list[str]:
    """The models of ``groups`` (:func:`model_groups`) in the offline stage, in order."""
    return groups.loc[groups["stage"] == "offline", "model"].astype(str).tolist()


# ---------------------------------------------------------------------------- result
@dataclass
class AcrossModelsResult(AnalysisResult):
    """The across-model comparison.

    - ``curves``: every model's diagnostic curves (:data:`CURVE_COLUMNS`, condition trained);
    - ``headlines``: one row per model x diagnostic x metric at its best layer
      (:func:`~moralkit.diagnostics.headline_table`) plus the model's ``stage``;
    - ``scaling``: Spearman of each headline with log10 parameters, per ``stage``;
    - ``alignment``: within-family sign-flip tests; ``pairs``: the paired headlines behind it;
    - ``condition_curves`` / ``condition_tests``: the offline conditions and their paired
      comparisons over layers.

    ``best()`` is the headline table.
    """

    TABLES = (
        "headlines",
        "curves",
        "scaling",
        "alignment",
        "pairs",
        "condition_curves",
        "condition_tests",
    )

    def best(self) -> pd.DataFrame:
        return self.tables["headlines"]

    def condition_curves_for(self, contrast: str) -> pd.DataFrame:
        """The condition curves of one contrast (e.g. ``"untrained_twin"``)."""
        if contrast not in CONTRASTS:
            raise ValueError(f"contrast={contrast!r}: expected one of {tuple(CONTRASTS)}")
        curves = self.tables["condition_curves"]
        return curves[curves["contrast"] == contrast].reset_index(drop=True)

    def headline(self) -> pd.DataFrame:
        return self.tables["headlines"]

    def claim(self) -> list[ClaimValue]:
        """``n_models`` always; ``scale_no_effect`` / ``alignment_no_effect`` as claims of no
        effect (equivalence, claims.yaml) whenever a size ladder / a within-family pair exists,
        with a failed gate ("too few models") below the claim's ``min_models`` / ``min_pairs``."""
        headlines = self.tables["headlines"]
        models = list(dict.fromkeys(headlines["model"].astype(str)))
        out = [ClaimValue("n_models", len(models), ", ".join(models))]
        scale = scale_claim(claimed_rows(headlines), claim_settings("scale_no_effect"))
        align = alignment_claim(
            claimed_rows(self.tables["pairs"]), claim_settings("alignment_no_effect")
        )
        return out + [c for c in (scale, align) if c is not None]


def _scaling_by_stage(
    headlines: pd.DataFrame, groups: pd.DataFrame, config: AcrossModelsConfig
) -> pd.DataFrame:
    params_b = dict(zip(groups["model"], groups["params_b"], strict=True))
    frames = []
    for stage, g in groups.groupby("stage"):
        rows = headlines[headlines["model"].isin(g["model"])]
        if rows.empty:
            continue
        test = scaling_test(rows, params_b, config.n_test_bootstrap, config.seed)
        frames.append(test.assign(stage=stage))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def compare_models(
    diagnosed: Mapping[str, Mapping[str, AnalysisResult]],
    groups: pd.DataFrame,
    conditions: Sequence[ConditionRun] = (),
    config: AcrossModelsConfig = AcrossModelsConfig(),
) -> AcrossModelsResult:
    """Compare models' diagnostics (paper §2.6, §3.2; book: Methods › Across models).

    ``diagnosed`` maps a model to its :func:`~moralkit.diagnostics.diagnose` output,
    ``groups`` is :func:`model_groups` of those models (family, stage, params_b) and
    ``conditions`` the offline runs of :func:`~moralkit.diagnostics.conditions.run_conditions`.
    """
    missing = sorted(set(diagnosed) - set(groups["model"]))
    if missing:
        raise ValueError(f"groups lacks models {missing}; pass model_groups(models)")
    results = [r for per_model in diagnosed.values() for r in per_model.values()]
    headlines = headline_table(results)
    cond_curves = condition_curves(conditions)
    tables = {
        "headlines": headlines.merge(
            groups[["model", "stage", "params_b"]], on="model", how="left"
        ),
        "curves": curves_table(results),
        "scaling": _scaling_by_stage(headlines, groups, config),
        "alignment": alignment_test(
            headlines, groups, config.contrasts, config.n_sign_flips, config.seed
        ),
        "pairs": paired_differences(headlines, groups, config.contrasts),
        "condition_curves": cond_curves,
        "condition_tests": compare_conditions(cond_curves, config.n_sign_flips, config.seed),
    }
    return AcrossModelsResult(tables, config)


def _has_chat_template(name: str) -> bool:
    from moralkit.models.registry import get_model_spec

    return bool(get_model_spec(name).chat)


def across_models(
    models: Sequence[str],
    records: MoralRecords,
    extract: Callable[..., ActivationSet],
    params: Mapping[str, Any],
    has_chat_template: Callable[[str], bool] = _has_chat_template,
) -> AcrossModelsResult:
    """Chapter 06's recipe (paper §2.6, §3.2; book: Methods › Across models): every model's
    activations on ``records`` (``extract``: the chapter's activation getter), the
    :data:`ACROSS_MODEL_DIAGNOSTICS` on each, the offline models' conditions
    (:func:`~moralkit.diagnostics.conditions.run_conditions`) and :func:`compare_models`, each
    with its settings built from the chapter's ``params``.
    """
    configs = diagnostic_configs(params, ACROSS_MODEL_DIAGNOSTICS)
    groups = model_groups(models)
    activations = {name: extract(name, records) for name in models}
    diagnosed = {
        name: diagnose(acts, records, which=tuple(configs), configs=configs)
        for name, acts in activations.items()
    }
    conditions = run_conditions(
        records,
        {name: activations[name] for name in offline_models(groups)},
        extract=extract,
        config=config_from_parameters(ConditionConfig, params),
        has_chat_template=has_chat_template,
        which=tuple(configs),
        configs=configs,
        seed=params["seed"],
    )
    return compare_models(
        diagnosed, groups, conditions, config_from_parameters(AcrossModelsConfig, params)
    )
