"""The γ sweep: what editing value neurons does to PVQ answers, fluency and sample answers.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. For each target value,
edit mode (value / reverse / random, :mod:`moralkit.neurons.edit`) and γ, the ``measure`` items
of the target and of its opposite are answered by option log-probabilities
(:mod:`moralkit.neurons.pvq`). The shift of an item's expected rating is paired with the same
item at γ = 0; intervals are t-intervals over items. The ``random`` mode is a distribution:
``n_random`` random neuron sets per target and γ (draw ``k`` seeded ``seed + 2k``), summarised
by :mod:`moralkit.neurons.controls` (the value edit's percentile among them). The fluency check
is the perplexity of neutral text under the same edits (:func:`moralkit.models.scoring.perplexity`,
as chapters 08 and 10 measure it; the random mode with its first draw).
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
from moralkit.neurons.controls import random_control_table, random_draws_table
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
    """γ values, modes, the edit rule's constants and what else to measure.

    ``n_random`` random neuron sets are drawn per target and γ of ``random_gammas`` (the
    ``random`` mode; None: every γ > 0, an empty tuple: none); ``n_bootstrap`` item resamples
    give the interval of the value edit's percentile among them.
    """

    gammas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0)
    modes: tuple[str, ...] = EDIT_MODES
    targets: tuple[str, ...] = SCHWARTZ_DIMENSIONS
    edit_fraction: float = 0.9
    sharpness: float = 10.0
    midpoint: float = 0.15
    clamp_opposite: bool = True
    seed: int = 0
    confidence: float = 0.95
    n_random: int = 20
    random_gammas: tuple[float, ...] | None = None
    n_bootstrap: int = 1000
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
        if self.n_random < 1:
            raise ValueError(f"n_random must be >= 1, got {self.n_random}")
        if self.random_gammas is not None:
            object.__setattr__(self, "random_gammas", tuple(map(float, self.random_gammas)))
            missing = sorted(set(self.random_gammas) - set(map(float, self.gammas)))
            if missing:
                raise ValueError(f"random_gammas {missing} are not among gammas {self.gammas}")

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
    rows = []
    for target, mode, gamma, draw in tqdm(
        _conditions(config), desc="γ sweep", disable=not config.progress
    ):
        subset = measure[measure["dimension"].isin([target, opposite_dimension(target)])]
        if gamma == 0:
            logprobs = base[subset.index.to_numpy()]
        else:
            boost, clamp = _sets(neurons, target, mode, width, config.seed + 2 * draw)
            with edit_neurons(model, boost, clamp, config.edit(gamma)):
                logprobs = option_logprobs(loaded, subset["item"].tolist(), config.pvq)
        rows.append(_rating_rows(subset, logprobs, target, mode, gamma).assign(draw=draw))
    ratings = pd.concat(rows, ignore_index=True).assign(model=loaded.name)
    ratings = _paired_shift(ratings)
    sweep = summarise_sweep(ratings, config.confidence)
    return ValueSweepResult(
        tables={
            "ratings": ratings,
            "sweep": sweep,
            "effect": effect_table(ratings, config.confidence),
            "random_control": random_control_table(
                ratings, config.n_bootstrap, config.seed, config.confidence
            ),
            "random_draws": random_draws_table(ratings),
            "fluency": fluency_table(loaded, neurons, config),
            "answers": answers_table(loaded, neurons, measure, config),
        },
        config=config,
    )


def _conditions(config: SweepConfig) -> list[tuple[str, str, float, int]]:
    """(target, mode, γ, draw) in run order; the random mode has ``n_random`` draws at each
    γ > 0 of ``random_gammas`` (and is not run at other γ > 0); γ = 0 (the unedited model) is
    one condition per mode."""
    random_at = config.random_gammas
    out = []
    for target in config.targets:
        for mode in config.modes:
            for gamma in map(float, config.gammas):
                draws = 1
                if mode == "random" and gamma != 0:
                    draws = config.n_random if random_at is None or gamma in random_at else 0
                out += [(target, mode, gamma, k) for k in range(draws)]
    return out


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
    """Each rating minus the same item's unedited (γ = 0) rating, the same for every mode."""
    keys = ["model", "target", "item_id"]
    base = ratings[ratings["gamma"] == 0].drop_duplicates(keys).set_index(keys)["rating"]
    ratings = ratings.join(base.rename("rating_base"), on=keys)
    return ratings.assign(shift=ratings["rating"] - ratings["rating_base"])


def summarise_sweep(ratings: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Mean rating and mean shift per (model, target, mode, γ, role), with an interval: over
    items (t) for a single edit, over draws (the central ``confidence`` share of the draws'
    mean shifts) for the random mode's distribution."""
    rows = []
    keys = ["model", "target", "mode", "gamma", "role"]
    for key, group in ratings.groupby(keys, sort=False):
        draws = group.groupby("draw")["shift"].mean().to_numpy()
        if len(draws) > 1:
            tail = 50 * (1 - confidence)
            mean, (low, high) = float(draws.mean()), np.percentile(draws, [tail, 100 - tail])
            over = f"random draws (central {confidence:.0%})"
        else:
            mean, low, high = mean_interval(group["shift"].to_numpy(), confidence)
            over = "items (t)"
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "mean_rating": group["rating"].mean(),
                "mean_shift": mean,
                "ci_low": low,
                "ci_high": high,
                "interval_over": over,
                "n_items": group["item_id"].nunique(),
                "n_draws": len(draws),
                **{f"p_{o}": group[f"p_{o}"].mean() for o in OPTIONS},
            }
        )
    return pd.DataFrame(rows)


def effect_table(ratings: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """At the largest γ: target shift, opposite shift and their difference (``separation``);
    a t-interval over items for a single edit, the draws' central ``confidence`` share for the
    random mode (whose shifts are then means over draws)."""
    top = ratings[ratings["gamma"] == ratings["gamma"].max()]
    rows = []
    for (model, target, mode), group in top.groupby(["model", "target", "mode"], sort=False):
        per_draw = group.groupby(["draw", "role"])["shift"].mean().unstack("role")
        if len(per_draw) > 1:
            seps = (per_draw["target"] - per_draw["opposite"]).to_numpy()
            tail = 50 * (1 - confidence)
            low, high = np.percentile(seps, [tail, 100 - tail])
            own, other = per_draw["target"].mean(), per_draw["opposite"].mean()
            separation = float(seps.mean())
        else:
            separation, low, high, own, other = _separation(group, confidence)
        rows.append(
            {
                "model": model,
                "target": target,
                "mode": mode,
                "gamma": float(group["gamma"].iloc[0]),
                "target_shift": own,
                "opposite_shift": other,
                "separation": separation,
                "ci_low": low,
                "ci_high": high,
                "n_draws": len(per_draw),
            }
        )
    return pd.DataFrame(rows)


def _separation(group: pd.DataFrame, confidence: float) -> tuple[float, ...]:
    """Target minus opposite mean shift with a Welch-style t-interval over items."""
    own = group.loc[group["role"] == "target", "shift"].to_numpy()
    other = group.loc[group["role"] == "opposite", "shift"].to_numpy()
    separation = own.mean() - other.mean()
    se = np.sqrt(own.var(ddof=1) / own.size + other.var(ddof=1) / other.size)
    dof = max(min(own.size, other.size) - 1, 1)
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    return separation, separation - half, separation + half, own.mean(), other.mean()


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
