"""The paper's four diagnostics of moral indifference, one shape for all.

(paper §2.2-2.6, §3.2; book: Methods › Categorical, Gradient, Structural, Dimensional and
Across models: methods/categorical.md, methods/gradient.md, methods/structural.md,
methods/dimensional.md, methods/across-models.md)

Every diagnostic is ``x_indifference(acts, records, config=XConfig(), progress=False) ->
XResult``: a frozen :class:`XConfig` (extending
:class:`~moralkit.diagnostics.inputs.DiagnosticConfig`: ``layers``, ``pooling``, ``seed``)
and an :class:`~moralkit.results.AnalysisResult` with named tidy tables, ``.best()``,
``.concat()``, ``.headline()`` and ``.claim()``.

- ``categorical``: ``categorical_indifference``, ``CategoricalConfig``, ``CategoricalResult``
- ``gradient``: ``gradient_indifference``, ``GradientConfig``, ``GradientResult``
- ``structural``: ``structural_indifference``, ``StructuralConfig``, ``StructuralResult``
- ``dimensional``: ``dimensional_indifference``, ``DimensionalConfig``, ``DimensionalResult``

:func:`diagnose` runs any of them on one activation set (:func:`diagnostic_configs` builds
their settings from a chapter's parameters); :func:`headline_table` and
:func:`compare_headlines` turn results into the one-row-per-headline table a before/after
comparison (e.g. SAE re-diagnosis) needs.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from moralkit.activation_set import ActivationSet
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, config_from_parameters

__all__ = [
    "DIAGNOSTICS",
    "compare_headlines",
    "config_class",
    "diagnose",
    "diagnostic_configs",
    "headline_table",
]

#: The four diagnostics, in the paper's order.
DIAGNOSTICS: tuple[str, ...] = ("categorical", "gradient", "structural", "dimensional")

# name -> (module, function, config class). Imported on use: the structural and dimensional
# diagnostics pull in scikit-learn's clustering and torch, which the other two do not need.
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "categorical": ("categorical", "categorical_indifference", "CategoricalConfig"),
    "gradient": ("gradient", "gradient_indifference", "GradientConfig"),
    "structural": ("structural", "structural_indifference", "StructuralConfig"),
    "dimensional": ("dimensional", "dimensional_indifference", "DimensionalConfig"),
}


def _lookup(name: str) -> tuple[Any, type]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown diagnostic {name!r}; expected some of {DIAGNOSTICS}")
    module_name, function, config = _REGISTRY[name]
    module = importlib.import_module(f"moralkit.diagnostics.{module_name}")
    return getattr(module, function), getattr(module, config)


def config_class(name: str) -> type:
    """The ``XConfig`` class of one diagnostic (e.g. ``config_class("structural")``)."""
    return _lookup(name)[1]


def diagnostic_configs(
    params: Mapping[str, Any],
    which: Sequence[str] = DIAGNOSTICS,
    param_names: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """``{name: XConfig}`` of the diagnostics in ``which`` from a chapter's parameters.

    Each field takes the parameter of the same name when it is not None
    (:func:`~moralkit.results.config_from_parameters`); ``param_names`` maps a diagnostic's
    field to another parameter, e.g. ``{"structural": {"n_permutations":
    "structural_permutations"}}``. What chapters 06 and 11 pass to :func:`diagnose`.
    """
    names = param_names or {}
    return {
        name: config_from_parameters(config_class(name), params, **names.get(name, {}))
        for name in which
    }


def _as_config(name: str, value: Any, cls: type) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"configs[{name!r}] has unknown field(s) {unknown}; {cls.__name__} has "
                f"{sorted(known)}"
            )
        return cls(**value)
    raise TypeError(
        f"configs[{name!r}] must be a {cls.__name__} or a mapping of its fields, "
        f"got {type(value).__name__}"
    )


def diagnose(
    acts: ActivationSet,
    records: MoralRecords,
    which: Sequence[str] = DIAGNOSTICS,
    configs: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> dict[str, AnalysisResult]:
    """Run the chosen diagnostics on one model's activations (rows aligned with ``records``).

    ``which`` names diagnostics from :data:`DIAGNOSTICS`; ``configs`` maps a name to its
    ``XConfig`` (or a mapping of that config's fields); a diagnostic without an entry runs
    with its defaults, and entries for diagnostics not in ``which`` are ignored (one
    ``configs`` can serve several calls). Returns ``{name: XResult}`` in the order of
    ``which``.
    """
    if isinstance(which, str):
        which = (which,)
    configs = dict(configs or {})
    unknown = sorted(set(configs) - set(DIAGNOSTICS))
    if unknown:
        raise ValueError(f"configs has unknown diagnostic(s) {unknown}; expected {DIAGNOSTICS}")
    out: dict[str, AnalysisResult] = {}
    for name in which:
        function, cls = _lookup(name)
        out[name] = function(
            acts, records, config=_as_config(name, configs.get(name), cls), progress=progress
        )
    return out


def _results(results: Mapping[str, AnalysisResult] | Iterable[AnalysisResult]) -> list:
    if isinstance(results, AnalysisResult):
        return [results]
    if isinstance(results, Mapping):
        return list(results.values())
    return list(results)


def headline_table(
    results: Mapping[str, AnalysisResult] | Iterable[AnalysisResult] | AnalysisResult,
    **labels: Any,
) -> pd.DataFrame:
    """One row per model x diagnostic x headline metric (:data:`HEADLINE_COLUMNS`).

    ``results`` is :func:`diagnose`'s output, a list of results or one result. ``labels``
    become constant columns placed first (e.g. ``condition="sae"``), so tables of two
    conditions stack and compare directly.
    """
    frames = [r.headline() for r in _results(results)]
    frames = [f for f in frames if len(f)]
    table = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(HEADLINE_COLUMNS))
    )
    for i, (column, value) in enumerate(labels.items()):
        table.insert(i, column, value)
    return table


def compare_headlines(
    before: Mapping[str, AnalysisResult] | Iterable[AnalysisResult],
    after: Mapping[str, AnalysisResult] | Iterable[AnalysisResult],
    names: tuple[str, str] = ("before", "after"),
) -> pd.DataFrame:
    """Headlines of two conditions side by side: one row per model x diagnostic x metric.

    Columns: model, diagnostic, metric, then ``value``, ``ci_low``, ``ci_high``, ``layer`` for
    each condition (suffixed ``_<name>``) and ``difference`` = after - before. Each condition
    keeps its own best layer.
    """
    keys = ["model", "diagnostic", "metric"]
    first, second = (headline_table(r) for r in (before, after))
    merged = first.merge(second, on=keys, how="outer", suffixes=tuple(f"_{n}" for n in names)).drop(
        columns=[f"relative_depth_{n}" for n in names], errors="ignore"
    )
    merged["difference"] = merged[f"value_{names[1]}"] - merged[f"value_{names[0]}"]
    return merged
