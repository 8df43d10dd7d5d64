"""Behavioural benchmarks: Moral Stories, ETHICS commonsense and Flames, in moralkit's schemas.

(paper §5.1; book: Methods › Evaluation, methods/evaluation.md.) Files come through
:func:`moralkit.data.fetch` only. The loaders return tables in the two bring-your-own-benchmark
schemas of :mod:`moralkit.evaluation.schema`:

- **paired**: ``context``, ``acceptable``, ``unacceptable`` (+ ``id``): Moral Stories, where the
  norm is the context and the moral / immoral actions are the two continuations. The mirrored
  release (action+norm classification files) has no situation or intention fields, so the
  context is the norm alone.
- **labelled**: ``text``, ``label`` (1 = morally wrong) (+ ``id``): ETHICS commonsense.

Flames (Chinese prompts for generation and judging) keeps its own fields: ``id``,
``dimension``, ``subcomponent``, ``prompt``.

A user's own benchmark files (``-p benchmarks a.csv,b.jsonl`` in chapters 08 and 10) are
measured beside these, whole, each in one of the two schemas (:func:`user_benchmarks`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from moralkit.data.fetch import fetch

MORAL_STORIES_SPLITS = {"dev": "moral-stories-dev", "test": "moral-stories-test"}
ETHICS_SPLITS = {"test": "ethics-cm-test", "test-hard": "ethics-cm-test-hard"}


def _read_jsonl(name: str) -> list[dict]:
    path = fetch(name)
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def moral_stories(split: str = "test") -> pd.DataFrame:
    """Moral Stories pairs (paired schema): norm as context, moral vs immoral action.

    The file holds one row per action; the two actions of a story share their ``ID`` up to its
    last character (1 = moral, 0 = immoral). Stories missing either action are dropped.
    """
    if split not in MORAL_STORIES_SPLITS:
        raise ValueError(f"split={split!r}; expected one of {list(MORAL_STORIES_SPLITS)}")
    rows = pd.DataFrame(_read_jsonl(MORAL_STORIES_SPLITS[split]))
    rows["story"] = rows["ID"].str[:-1]
    moral = rows.dropna(subset=["moral_action"]).set_index("story")
    immoral = rows.dropna(subset=["immoral_action"]).set_index("story")
    stories = moral.index.intersection(immoral.index)
    table = pd.DataFrame(
        {
            "id": stories,
            "context": moral.loc[stories, "norm"].to_numpy(),
            "acceptable": moral.loc[stories, "moral_action"].to_numpy(),
            "unacceptable": immoral.loc[stories, "immoral_action"].to_numpy(),
        }
    )
    return table.reset_index(drop=True)


def ethics_commonsense(split: str = "test", short_only: bool = True) -> pd.DataFrame:
    """ETHICS commonsense morality (labelled schema): ``label`` 1 = the act is wrong.

    ``short_only`` keeps the one- or two-sentence scenarios (``is_short``); the long ones are
    Reddit posts of hundreds of tokens.
    """
    if split not in ETHICS_SPLITS:
        raise ValueError(f"split={split!r}; expected one of {list(ETHICS_SPLITS)}")
    raw = pd.read_csv(fetch(ETHICS_SPLITS[split]))
    raw["id"] = [f"{split}-{i}" for i in range(len(raw))]
    if short_only:
        raw = raw[raw["is_short"].astype(str).str.lower() == "true"]
    table = raw.rename(columns={"input": "text"})[["id", "text", "label"]]
    return table.astype({"label": int}).reset_index(drop=True)


def flames_prompts() -> pd.DataFrame:
    """The 1,000 Flames prompts (paper §5.1): id, dimension, subcomponent, prompt."""
    table = pd.DataFrame(_read_jsonl("flames-1k"))
    table.insert(0, "id", [f"flames-{i:04d}" for i in range(len(table))])
    return table[["id", "dimension", "subcomponent", "prompt"]]


def sample_rows(table: pd.DataFrame, n: int | None, seed: int) -> pd.DataFrame:
    """A reproducible random sample of ``n`` rows (all rows when ``n`` is None or larger)."""
    if n is None or n >= len(table):
        return table.reset_index(drop=True)
    return table.sample(n=int(n), random_state=int(seed)).reset_index(drop=True)


_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def benchmark_files(value: Any, name: str = "benchmarks") -> list[str]:
    """The ``benchmarks`` parameter: ``"a.csv,b.jsonl"`` or a list -> absolute paths, each an
    existing file with a benchmark suffix (its rows are checked when it is read); ``ValueError``
    names the parameter and the file."""
    if value is None or (isinstance(value, str | list | tuple) and not value):
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"parameter {name}={value!r}: expected benchmark file paths")
    paths = []
    for item in (str(x).strip() for x in items if str(x).strip()):
        path = Path(item).expanduser().resolve()
        if path.suffix.lower() not in _SUFFIXES:
            raise ValueError(
                f"parameter {name}={value!r}: {path} is not a benchmark file; use one of "
                f"{', '.join(_SUFFIXES)} in the labelled or paired schema"
            )
        if not path.is_file():
            raise ValueError(f"parameter {name}={value!r}: benchmark file {path} does not exist")
        paths.append(str(path))
    return paths
