"""Unlabelled moral texts: the pool SAE pretraining draws from, beside the labelled records.

(paper §4.1-4.2; book: Methods › SAE surgery, methods/sae.md.) Moral Stories norms and actions,
ETHICS commonsense short scenarios and Social-Chem-101 subset actions, read from their manifest
files through :func:`moralkit.data.fetch`. Torch-free, so the workflow reads
:data:`UNLABELLED_SOURCES` to know which files the SAE jobs need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd

from moralkit.data.fetch import fetch

#: Manifest files the unlabelled pool is drawn from, and the columns holding texts.
UNLABELLED_SOURCES: dict[str, tuple[str, ...]] = {
    "moral-stories-dev": ("norm", "moral_action", "immoral_action"),
    "moral-stories-test": ("norm", "moral_action", "immoral_action"),
    "ethics-cm-test": ("input",),
    "social-chem-101-obligatory": ("action",),
    "social-chem-101-optional": ("action",),
}


def _read_source(name: str, columns: tuple[str, ...]) -> pd.DataFrame:
    path = fetch(name)
    if str(path).endswith(".jsonl"):
        table = pd.DataFrame([json.loads(line) for line in open(path, encoding="utf-8")])
    else:
        table = pd.read_csv(path)
    if "is_short" in table.columns:  # ETHICS long scenarios are Reddit posts: too long here
        table = table[table["is_short"].astype(str) == "True"]
    texts = [table[c].dropna().astype(str) for c in columns if c in table.columns]
    if not texts:
        raise ValueError(f"unlabelled source {name!r} has none of the columns {columns}")
    return pd.DataFrame({"text": pd.concat(texts, ignore_index=True), "source": name})


def unlabelled_texts(
    n: int, seed: int = 0, exclude: Iterable[str] = (), max_words: int = 40
) -> pd.DataFrame:
    """A seeded sample of ``n`` unique unlabelled moral texts (columns ``text``, ``source``).

    Texts in ``exclude`` (e.g. every labelled record's text) and texts longer than
    ``max_words`` words are left out. ``n = 0`` gives an empty table; ``n < 0`` all texts.
    """
    if n == 0:
        return pd.DataFrame({"text": pd.Series(dtype=str), "source": pd.Series(dtype=str)})
    pool = pd.concat([_read_source(k, v) for k, v in UNLABELLED_SOURCES.items()])
    pool["text"] = pool["text"].str.strip()
    pool = pool[(pool["text"].str.len() > 0) & (pool["text"].str.split().str.len() <= max_words)]
    pool = pool[~pool["text"].isin(set(exclude))].drop_duplicates("text")
    if 0 < n < len(pool):
        pool = pool.sample(n=n, random_state=seed)
    return pool.sort_values(["source", "text"]).reset_index(drop=True)
