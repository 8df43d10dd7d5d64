"""The γ sweep: what editing value neurons does to PVQ answers, fluency and sample answers.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. For each target value,
edit mode (value / reverse / random, :mod:`moralkit.neurons.edit`) and γ, the ``measure`` items
of the target and of its opposite are answered by option log-probabilities
(:mod:`moralkit.neurons.pvq`). The shift of an item's expected rating is paired with the same
item at γ = 0; intervals are t-intervals over items. The fluency check is the perplexity of
neutral text under the same edits (:func:`moralkit.models.scoring.perplexity`, as chapters 08
and 10 measure it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from moralkit.data.valuebench import SCHWARTZ_DIMENSIONS, opposite_dimension
from moralkit.evaluation.neutral_text import NEUTRAL_TEXTS
from moralkit.models.scoring import perplexity
from moralkit.neurons.edit import EDIT_MODES, EditConfig, edit_neurons, edit_sets
from moralkit.neurons.hooks import gate_width
from moralkit.neurons.pvq import (
    OPTIONS,
    PVQConfig,
    expected_rating,
    generate_answer,
    option_logprobs,
)
from moralkit.neurons.results import ValueSweepResult

if TYPE_CHECKING:
    from moralkit.models import LoadedModel

_TUPLES = ("gammas", "modes", "targets", "fluency_modes", "answer_gammas")


@dataclass(frozen=True)
class SweepConfig:
    """γ values, modes, the edit rule's constants and what else to measure."""

    gammas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    modes: tuple[str, ...] = EDIT_MODES
    targets: tuple[str, ...] = SCHWARTZ_DIMENSIONS
    edit_fraction: float = 0.9
    sharpness: float = 10.0
    midpoint: float = 0.15
    clamp_opposite: bool = True
    seed: int = 0
    confidence: float = 0.95
    split: str = "measure"
    fluency_modes: tuple[str, ...] = ("value", "random")
    n_fluency_texts: int = len(NEUTRAL_TEXTS)
    answer_gammas: tuple[float, ...] = (0.0, 1.0, 2.0)
    n_answer_items: int = 1
    answer_tokens: int = 24
    progress: bool = True
    pvq: PVQConfig = field(default_factory=PVQConfig)

    def __post_init__(self) -> None:
        for name in _TUPLES:  # profiles give lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        bad = [m for m in (*self.modes, *self.fluency_modes) if m not in EDIT_MODES]
        if bad:
            raise ValueError(f"unknown edit modes {bad}; expected {EDIT_MODES}")
        if 0.0 not in self.gammas:
            raise ValueError("gammas must include 0 (the unedited baseline shifts are paired with)")

    def edit(self, gamma: float) -> EditConfig:
        return EditConfig(
            gamma, self.edit_fraction, self.sharpness, self.midpoint, self.clamp_opposite, self.seed
        )


def mean_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Mean and t-interval of ``values`` (NaN bounds for fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean()) if values.size else np.nan
    if values.size < 2:
        return mean, np.nan, np.nan
    sem = stats.sem(values)
    if sem == 0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, values.size - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def value_sweep(
    loaded: LoadedModel,
    neurons: pd.DataFrame,
    items: pd.DataFrame,
    config: SweepConfig | None = None,
) -> ValueSweepResult:
    """Run the sweep for one model with its value-neuron table (see module docstring)."""
    config = config or SweepConfig()
    model = loaded.model
    measure = items[items["split"] == config.split].reset_index(drop=True)
    base = option_logprobs(loaded, measure["item"].tolist(), config.pvq)
    width = gate_width(model)
    conditions = [(t, m, g) for t in config.targets for m in config.modes for g in config.gammas]
    rows = []
    for target, mode, gamma in tqdm(conditions, desc="γ sweep", disable=not config.progress):
        subset = measure[measure["dimension"].isin([target, opposite_dimension(target)])]
        if gamma == 0:
            logprobs = base[subset.index.to_numpy()]
        else:
            boost, clamp = _sets(neurons, target, mode, width, config.seed)
            with edit_neurons(model, boost, clamp, config.edit(gamma)):
                logprobs = option_logprobs(loaded, subset["item"].tolist(), config.pvq)
        rows.append(_rating_rows(subset, logprobs, target, mode, gamma))
    ratings = pd.concat(rows, ignore_index=True).assign(model=loaded.name)
    ratings = _paired_shift(ratings)
    sweep = summarise_sweep(ratings, config.confidence)
    return ValueSweepResult(
        tables={
            "ratings": ratings,
            "sweep": sweep,
            "effect": effect_table(ratings, config.confidence),
            "fluency": fluency_table(loaded, neurons, config),
            "answers": answers_table(loaded, neurons, measure, config),
        },
        config=config,
    )


def _sets(neurons: pd.DataFrame, target: str, mode: str, width: int, seed: int):
    own = neurons[neurons["dimension"] == target]
    other = neurons[neurons["dimension"] == opposite_dimension(target)]
    return edit_sets(own, other, mode, width, seed)


def _rating_rows(subset, logprobs, target, mode, gamma) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "target": target,
            "mode": mode,
            "gamma": float(gamma),
            "item_id": subset["item_id"].to_numpy(),
            "item_dimension": subset["dimension"].to_numpy(),
            "role": np.where(subset["dimension"] == target, "target", "opposite"),
            "rating": expected_rating(logprobs, subset["agreement"].to_numpy()),
        }
    )
    probs = np.exp(logprobs)
    for k, option in enumerate(OPTIONS):
        table[f"p_{option}"] = probs[:, k]
    return table


def _paired_shift(ratings: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "target", "mode", "item_id"]
    base = ratings[ratings["gamma"] == 0].set_index(keys)["rating"].rename("rating_base")
    ratings = ratings.join(base, on=keys)
    return ratings.assign(shift=ratings["rating"] - ratings["rating_base"])


def summarise_sweep(ratings: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Mean rating, mean shift and its interval over items per (model, target, mode, γ, role)."""
    rows = []
    keys = ["model", "target", "mode", "gamma", "role"]
    for key, group in ratings.groupby(keys, sort=False):
        mean, low, high = mean_interval(group["shift"].to_numpy(), confidence)
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "mean_rating": group["rating"].mean(),
                "mean_shift": mean,
                "ci_low": low,
                "ci_high": high,
                "n_items": len(group),
                **{f"p_{o}": group[f"p_{o}"].mean() for o in OPTIONS},
            }
        )
    return pd.DataFrame(rows)


def effect_table(ratings: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """At the largest γ: target shift, opposite shift and their difference (``separation``)."""
    top = ratings[ratings["gamma"] == ratings["gamma"].max()]
    rows = []
    for (model, target, mode), group in top.groupby(["model", "target", "mode"], sort=False):
        own = group.loc[group["role"] == "target", "shift"].to_numpy()
        other = group.loc[group["role"] == "opposite", "shift"].to_numpy()
        separation = own.mean() - other.mean()
        se = np.sqrt(own.var(ddof=1) / own.size + other.var(ddof=1) / other.size)
        dof = max(min(own.size, other.size) - 1, 1)
        half = stats.t.ppf(0.5 + confidence / 2, dof) * se
        rows.append(
            {
                "model": model,
                "target": target,
                "mode": mode,
                "gamma": float(group["gamma"].iloc[0]),
                "target_shift": own.mean(),
                "opposite_shift": other.mean(),
                "separation": separation,
                "ci_low": separation - half,
                "ci_high": separation + half,
            }
        )
    return pd.DataFrame(rows)


def fluency_table(loaded: LoadedModel, neurons: pd.DataFrame, config: SweepConfig) -> pd.DataFrame:
    """Perplexity of neutral text per (target, mode, γ); γ = 0 measured once and repeated."""
    if not config.fluency_modes:
        return pd.DataFrame(columns=["model", "target", "mode", "gamma", "perplexity"])
    width = gate_width(loaded.model)
    texts = NEUTRAL_TEXTS[: config.n_fluency_texts]
    baseline = perplexity(loaded, texts)
    rows = []
    for target in config.targets:
        for mode in config.fluency_modes:
            boost, clamp = _sets(neurons, target, mode, width, config.seed)
            for gamma in config.gammas:
                with edit_neurons(loaded.model, boost, clamp, config.edit(gamma)):
                    ppl = baseline if gamma == 0 else perplexity(loaded, texts)
                rows.append((loaded.name, target, mode, float(gamma), ppl))
    return pd.DataFrame(rows, columns=["model", "target", "mode", "gamma", "perplexity"])


def answers_table(
    loaded: LoadedModel, neurons: pd.DataFrame, measure: pd.DataFrame, config: SweepConfig
) -> pd.DataFrame:
    """Greedy answers to the first ``n_answer_items`` measure items of each target, value mode."""
    columns = ["model", "target", "gamma", "item_id", "item", "answer"]
    if config.n_answer_items < 1 or not config.answer_gammas:
        return pd.DataFrame(columns=columns)
    width = gate_width(loaded.model)
    rows = []
    for target in config.targets:
        boost, clamp = _sets(neurons, target, "value", width, config.seed)
        chosen = measure[measure["dimension"] == target].head(config.n_answer_items)
        for gamma in config.answer_gammas:
            with edit_neurons(loaded.model, boost, clamp, config.edit(gamma)):
                for item in chosen.itertuples():
                    answer = generate_answer(loaded, item.item, config.pvq, config.answer_tokens)
                    rows.append(
                        (loaded.name, target, float(gamma), item.item_id, item.item, answer)
                    )
    return pd.DataFrame(rows, columns=columns)
