"""The bridge to the main paper: chapters 02-05's moral diagnostics with and without pruning.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from moralkit.layers import LayerSpec
from moralkit.pruning.masks import PruneMask, pruned
from moralkit.pruning.results import UNPRUNED, PrunedDiagnosticsResult

if TYPE_CHECKING:
    from moralkit.models import LoadedModel
    from moralkit.records import MoralRecords


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


def pruned_diagnostics(
    loaded: LoadedModel,
    masks: Mapping[str, PruneMask],
    records: MoralRecords,
    layers: LayerSpec | None = None,
    which: Sequence[str] = ("categorical", "gradient"),
    pooling: str = "mean",
    template: str | None = None,
    n_resamples: int | None = None,
    progress: bool = False,
) -> PrunedDiagnosticsResult:
    """The moral diagnostics' headlines unpruned and under each mask, with differences.

    Activations are extracted under the pruning context with
    :func:`moralkit.activations.extract_activations` (never the activation cache, whose key is
    the unpruned weights' hash), at ``layers`` (the chapter's ``bridge_layers``; None: every
    layer) resolved for this model. ``n_resamples`` sets the diagnostics' permutation and
    bootstrap counts (None: their defaults); headline values do not depend on it.
    """
    from moralkit.activations import DEFAULT_TEMPLATE, extract_activations
    from moralkit.diagnostics import diagnose, headline_table

    options = {
        "layers": (layers or LayerSpec()).resolve(loaded.n_layers, "bridge_layers"),
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
    return PrunedDiagnosticsResult({"bridge": table})
