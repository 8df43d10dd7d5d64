"""Offline stand-ins for the paper's scale and alignment comparison: typed conditions.

(paper §3.2; book: Methods › Across models, methods/across-models.md)

Without the paper's 23 models, chapter 06 compares each offline model with two *conditions*
of itself, on a stratified subset of the records:

- ``untrained_twin``: the same architecture and tokenizer with random weights (is a
  diagnostic a product of training at all?);
- ``safety_prompt``: the same statements as a user turn after a safety system prompt, chat
  models only (can the cheapest form of alignment move it?).

Each is paired with the plain trained model (condition ``trained``) on the *same* subset.
Conditions are a column (``condition``) and each pairing a ``contrast``, never text inside a
model label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics import diagnose
from moralkit.diagnostics.inputs import check_alignment
from moralkit.profiles import select_models
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult

#: The conditions a diagnostic can be run under.
CONDITIONS: tuple[str, ...] = ("trained", "untrained_twin", "safety_prompt")
#: contrast -> (condition a, condition b) compared as a - b.
CONTRASTS: dict[str, tuple[str, str]] = {
    "untrained_twin": ("trained", "untrained_twin"),
    "safety_prompt": ("safety_prompt", "trained"),
}
#: System prompt of the offline ``safety_prompt`` condition (chat models only).
SAFETY_SYSTEM_PROMPT = (
    "You are a helpful, honest and harmless assistant. Refuse anything harmful or unethical."
)


@dataclass(frozen=True)
class ConditionConfig:
    """Which offline conditions chapter 06 runs, and on how many records.

    ``untrained_twins`` names the models whose untrained twin is run, in the grammar of
    :func:`moralkit.profiles.select_models` (as chapter 05's parameter of the same name):
    ``"all"`` (every model given), ``"none"``, or names (a comma-separated string or a list);
    ``True`` / ``False`` mean all / none.
    ``prompted_alignment`` switches the safety-prompt condition on or off (chat models only).
    Both need fresh activations, so they run on stratified subsets of the records
    (``*_sample_scale``, relative to the paper's caps) to keep CPU time down.
    """

    untrained_twins: Any = "all"
    prompted_alignment: bool = True
    twin_sample_scale: float = 0.05
    prompted_sample_scale: float = 0.03
    system_prompt: str = SAFETY_SYSTEM_PROMPT

    def twin_models(self, models: Sequence[str]) -> list[str]:
        """The models among ``models`` whose untrained twin runs."""
        value = self.untrained_twins
        if isinstance(value, bool):
            value = "all" if value else "none"
        if value is None:
            raise ValueError("untrained_twins=None: use 'all', 'none' or model names")
        names = select_models(value, models)
        return [m for m in models if m in names]


@dataclass
class ConditionRun:
    """The diagnostics of one model under one condition, for one contrast's subset."""

    model: str
    contrast: str
    condition: str
    results: Mapping[str, AnalysisResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.condition not in CONDITIONS:
            raise ValueError(f"condition={self.condition!r}: expected one of {CONDITIONS}")
        if self.contrast not in CONTRASTS:
            raise ValueError(f"contrast={self.contrast!r}: expected one of {tuple(CONTRASTS)}")


def matched_subset(
    records: MoralRecords, acts: ActivationSet, sample_scale: float, seed: int = 42
) -> tuple[MoralRecords, ActivationSet]:
    """A stratified subset of ``records`` (paper §1.5) and the matching rows of ``acts``, so a
    new condition can be paired with the existing activations."""
    from moralkit.data import stratified_subset

    ids = records.table["record_id"]
    if ids.duplicated().any():
        raise ValueError("record_id values are not unique; cannot match a subset to activations")
    check_alignment(acts, records)
    subset = stratified_subset(records, scale=sample_scale, seed=seed)
    position = pd.Series(np.arange(len(records)), index=ids.to_numpy())
    return subset, acts.take(position.loc[subset.table["record_id"].to_numpy()].to_numpy())


def _wanted_runs(
    models: Sequence[str], config: ConditionConfig, has_chat_template: Callable[[str], bool]
) -> list[tuple[str, str, float, dict]]:
    """(model, contrast, sample scale, extraction options) for every treated condition."""
    wanted = []
    for name in config.twin_models(models):
        wanted.append((name, "untrained_twin", config.twin_sample_scale, {"random_init": True}))
    if config.prompted_alignment:
        for name in models:
            if has_chat_template(name):
                options = {"system_prompt": config.system_prompt}
                wanted.append((name, "safety_prompt", config.prompted_sample_scale, options))
    return wanted


def run_conditions(
    records: MoralRecords,
    activations: Mapping[str, ActivationSet],
    extract: Callable[..., ActivationSet],
    config: ConditionConfig = ConditionConfig(),
    has_chat_template: Callable[[str], bool] = lambda name: False,
    which: Sequence[str] = ("categorical", "gradient"),
    configs: Mapping[str, Any] | None = None,
    seed: int = 42,
) -> list[ConditionRun]:
    """Diagnose each model in ``activations`` under its offline conditions.

    For every contrast a model takes part in, its plain activations (rows aligned with
    ``records``) are cut to a stratified subset and paired with a fresh extraction of the
    treated condition on the same subset: ``extract(name, subset, random_init=True,
    seed=seed)`` or ``extract(name, subset, system_prompt=...)``. ``extract`` is the chapter's
    activation getter, so provenance records every extra run. ``which`` / ``configs`` are
    passed to :func:`~moralkit.diagnostics.diagnose`.
    """
    runs = []
    for name, contrast, scale, options in _wanted_runs(
        list(activations), config, has_chat_template
    ):
        if options.get("random_init"):
            options = {**options, "seed": seed}
        subset, plain = matched_subset(records, activations[name], scale, seed)
        treated = extract(name, subset, **options)
        for condition, acts in ((contrast, treated), ("trained", plain)):
            acts = dataclasses.replace(acts, model_id=name)
            results = diagnose(acts, subset, which=which, configs=configs)
            runs.append(ConditionRun(name, contrast, condition, results))
    return runs
