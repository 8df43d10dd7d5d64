"""ValueBench's PVQ40 items, grouped into Schwartz's four higher-order values.

Chapter 09 (value neurons; paper §7(a); book: Methods › Value neurons, methods/value-neurons.md)
needs two disjoint item sets: one to FIND value neurons (the contrast prompts) and one to
MEASURE what editing them does (the questionnaire). Both come from the 40 items of Schwartz's
Portrait Values Questionnaire (``PVQ40``) in ValueBench's ``value_items.csv``.

Ten basic values map onto four higher-order dimensions (Schwartz 1992, 2012):

- Openness to Change: Self-Direction, Stimulation, Hedonism (Hedonism shares elements with
  Self-Enhancement; :attr:`ValueItemsConfig.hedonism` moves or drops it);
- Conservation: Security, Conformity, Tradition;
- Self-Enhancement: Achievement, Power;
- Self-Transcendence: Benevolence, Universalism.

They form two opposing pairs: Openness to Change ↔ Conservation and Self-Transcendence ↔
Self-Enhancement. ValueBench marks reverse-keyed items with ``agreement = -1`` and reverses the
rating of such items; :func:`keyed_rating` does the same (``low + high - rating``). No PVQ40
item is reverse-keyed, but the code keeps the rule for other inventories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from moralkit.data.fetch import fetch
from moralkit.data.reading import parse_numbers, read_table

VALUEBENCH_FILE = "valuebench-items"
#: The four higher-order values, in a fixed order (pairs are adjacent: 0↔1, 2↔3).
SCHWARTZ_DIMENSIONS: tuple[str, ...] = (
    "Openness to Change",
    "Conservation",
    "Self-Transcendence",
    "Self-Enhancement",
)
OPPOSITE_DIMENSION: dict[str, str] = {
    "Openness to Change": "Conservation",
    "Conservation": "Openness to Change",
    "Self-Transcendence": "Self-Enhancement",
    "Self-Enhancement": "Self-Transcendence",
}
#: Basic value -> higher-order dimension (Hedonism set by the config).
BASIC_VALUE_DIMENSION: dict[str, str] = {
    "Self-Direction": "Openness to Change",
    "Stimulation": "Openness to Change",
    "Security": "Conservation",
    "Conformity": "Conservation",
    "Tradition": "Conservation",
    "Achievement": "Self-Enhancement",
    "Power": "Self-Enhancement",
    "Benevolence": "Self-Transcendence",
    "Universalism": "Self-Transcendence",
}
SPLITS: tuple[str, ...] = ("find", "measure")


@dataclass(frozen=True)
class ValueItemsConfig:
    """Which items, how Hedonism is grouped, and the find/measure split.

    ``find_fraction`` of each basic value's items (at least one, at most all but one) go to the
    ``find`` split, the rest to ``measure``; ``seed`` fixes which. ``repair_quotes`` replaces
    the source file's ``??`` artefact (a lost typographic apostrophe) by ``'``.
    """

    questionnaire: str = "PVQ40"
    hedonism: str | None = "Openness to Change"
    find_fraction: float = 0.5
    seed: int = 0
    repair_quotes: bool = True

    def __post_init__(self) -> None:
        if self.hedonism is not None and self.hedonism not in SCHWARTZ_DIMENSIONS:
            raise ValueError(
                f"hedonism must be None or one of {SCHWARTZ_DIMENSIONS}, got {self.hedonism!r}"
            )
        if not 0.0 < self.find_fraction < 1.0:
            raise ValueError(f"find_fraction must lie in (0, 1), got {self.find_fraction}")


def opposite_dimension(dimension: str) -> str:
    """The higher-order value opposing ``dimension`` (ValueError for an unknown name)."""
    if dimension not in OPPOSITE_DIMENSION:
        raise ValueError(f"unknown value dimension {dimension!r}; expected {SCHWARTZ_DIMENSIONS}")
    return OPPOSITE_DIMENSION[dimension]


def dimension_map(hedonism: str | None) -> dict[str, str]:
    """Basic value -> higher-order dimension, with Hedonism placed as asked (None: dropped)."""
    mapping = dict(BASIC_VALUE_DIMENSION)
    if hedonism is not None:
        mapping["Hedonism"] = hedonism
    return mapping


def keyed_rating(rating: np.ndarray, agreement: np.ndarray, low: float, high: float) -> np.ndarray:
    """Ratings with reverse-keyed items (``agreement == -1``) reversed, as ValueBench scores."""
    rating = np.asarray(rating, dtype=np.float64)
    reverse = np.asarray(agreement) == -1
    return np.where(reverse, low + high - rating, rating)


def read_value_items(questionnaire: str = "PVQ40") -> pd.DataFrame:
    """The rows of one ValueBench inventory: ``item``, ``value``, ``agreement`` (+1 / -1)."""
    path = fetch(VALUEBENCH_FILE)
    label = f"{VALUEBENCH_FILE} ({path})"
    raw = read_table(path, ["questionnaire", "item", "value", "agreement"], label=label)
    rows = raw[raw["questionnaire"] == questionnaire].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"no items of questionnaire {questionnaire!r} in file {label}")
    agreement = parse_numbers(rows["agreement"], "agreement", label)
    if agreement.isna().any() or not set(agreement.unique()) <= {1.0, -1.0}:
        raise ValueError(f"column 'agreement' in file {label} must be 1 or -1 for {questionnaire}")
    return rows.assign(agreement=agreement.astype(int), item=rows["item"].str.strip())


def load_value_items(config: ValueItemsConfig | None = None) -> pd.DataFrame:
    """PVQ items with their higher-order dimension and a disjoint find/measure split.

    Columns: ``item_id`` (``pvq40_01`` ... in file order), ``item``, ``value`` (basic value),
    ``dimension``, ``opposite`` (the opposing dimension), ``agreement`` and ``split``.
    """
    config = config or ValueItemsConfig()
    rows = read_value_items(config.questionnaire)
    mapping = dimension_map(config.hedonism)
    unknown = sorted(set(rows["value"]) - set(mapping) - {"Hedonism"})
    if unknown:
        raise ValueError(f"{config.questionnaire} has values {unknown} outside Schwartz's ten")
    prefix = config.questionnaire.lower()
    items = rows.assign(item_id=[f"{prefix}_{i + 1:02d}" for i in range(len(rows))])
    items = items[items["value"].isin(list(mapping))].reset_index(drop=True)
    if config.repair_quotes:
        items["item"] = items["item"].str.replace("??", "'", regex=False)
    items["dimension"] = items["value"].map(mapping)
    items["opposite"] = items["dimension"].map(OPPOSITE_DIMENSION)
    items["split"] = assign_splits(items["value"], config.find_fraction, config.seed)
    columns = ["item_id", "item", "value", "dimension", "opposite", "agreement", "split"]
    return items[columns]


def assign_splits(groups: pd.Series, find_fraction: float, seed: int) -> np.ndarray:
    """``find`` / ``measure`` per row, stratified by group; both splits get >= 1 row per group
    of two or more (a group of one goes to ``measure``)."""
    rng = np.random.default_rng(seed)
    split = np.full(len(groups), "measure", dtype=object)
    for _, index in groups.groupby(groups, sort=True).groups.items():
        index = np.asarray(list(index))
        if len(index) < 2:
            continue
        n_find = int(np.clip(round(find_fraction * len(index)), 1, len(index) - 1))
        split[rng.permutation(index)[:n_find]] = "find"
    return split


def value_prompts(items: pd.DataFrame, template: str) -> list[str]:
    """Prompts from items with a template using ``{value}``, ``{dimension}`` and ``{item}``."""
    try:
        return [
            template.format(value=r.value, dimension=r.dimension, item=r.item)
            for r in items.itertuples()
        ]
    except KeyError as err:
        raise ValueError(
            f"prompt template {template!r} uses {err}; allowed: {{value}}, {{dimension}}, {{item}}"
        ) from err
