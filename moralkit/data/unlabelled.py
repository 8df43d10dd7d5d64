"""Unlabelled texts: the pool SAE pretraining draws from, beside the labelled records.

(paper §4.1-4.2; book: Methods › SAE surgery, methods/sae.md.) Every offline moral and everyday
text there is: Moral Stories norms and actions, ETHICS commonsense short scenarios of the test
and hard-test sets, the Social-Chem-101 subset's actions, rules of thumb and situations,
ValueBench's questionnaire items, and the words of the four lexicons, minus every text of the
ground truths a chapter scores. Torch-free, so the workflow reads :func:`unlabelled_files` to
know which files the SAE jobs need.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

from moralkit.data.fetch import fetch
from moralkit.data.ground_truth import GROUND_TRUTH_FILES, load_records

__all__ = [
    "UNLABELLED_LEXICONS",
    "UNLABELLED_SOURCES",
    "unlabelled_files",
    "unlabelled_pool",
    "unlabelled_texts",
]

#: Manifest files of the unlabelled pool, and the columns holding texts.
UNLABELLED_SOURCES: dict[str, tuple[str, ...]] = {
    "moral-stories-dev": ("norm", "moral_action", "immoral_action"),
    "moral-stories-test": ("norm", "moral_action", "immoral_action"),
    "ethics-cm-test": ("input",),
    "ethics-cm-test-hard": ("input",),
    "social-chem-101-obligatory": ("action", "rot", "situation"),
    "social-chem-101-optional": ("action", "rot", "situation"),
    "valuebench-items": ("item",),
}
#: Lexicon ground truths whose words join the pool (their record texts; the closest in form to
#: the labelled records, which are lexicon words too on the offline profiles).
UNLABELLED_LEXICONS: tuple[str, ...] = ("moralstrength", "emfd", "mfd2", "mfd")


def unlabelled_files() -> tuple[str, ...]:
    """Every manifest file the pool reads: the sources' and the lexicons' (the workflow fetches
    them before the SAE chapter)."""
    lexicons = (f for g in UNLABELLED_LEXICONS for f in GROUND_TRUTH_FILES[g])
    return tuple(dict.fromkeys([*UNLABELLED_SOURCES, *lexicons]))


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


def _lexicon_words(name: str) -> pd.DataFrame:
    return pd.DataFrame({"text": load_records(name).texts, "source": name})


def _ground_truth_texts(names: Iterable[str]) -> set[str]:
    return {text.strip() for name in names for text in load_records(name).texts}


def unlabelled_pool(
    exclude_ground_truths: Iterable[str] = (), exclude: Iterable[str] = (), max_words: int = 40
) -> pd.DataFrame:
    """Every unique unlabelled text (columns ``text``, ``source``), sorted by source and text.

    Texts longer than ``max_words`` words, every text of the ground truths
    ``exclude_ground_truths`` (all their records, not only a diagnostic subset) and the texts in
    ``exclude`` are left out, so no text a chapter scores is ever pretrained on.
    """
    frames = [_read_source(k, v) for k, v in UNLABELLED_SOURCES.items()]
    frames += [_lexicon_words(name) for name in UNLABELLED_LEXICONS]
    pool = pd.concat(frames, ignore_index=True)
    pool["text"] = pool["text"].str.strip()
    pool = pool[(pool["text"].str.len() > 0) & (pool["text"].str.split().str.len() <= max_words)]
    dropped = _ground_truth_texts(exclude_ground_truths) | {t.strip() for t in exclude}
    pool = pool[~pool["text"].isin(dropped)].drop_duplicates("text")
    return pool.sort_values(["source", "text"]).reset_index(drop=True)


def unlabelled_texts(
    n: int,
    seed: int = 0,
    exclude_ground_truths: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_words: int = 40,
) -> pd.DataFrame:
    """A seeded sample of ``n`` texts of :func:`unlabelled_pool` (``n < 0``: all of them,
    ``n = 0``: none), sorted by source and text.

    The lexicons' words come first (in seeded order), then the other texts (in seeded order),
    and the first ``n`` are kept: the words are the texts closest in form to labelled records
    that are themselves words in the prompt template, which an SAE has to reconstruct. Samples
    of one seed nest: a larger ``n`` keeps every text of a smaller one.
    """
    if n == 0:
        return pd.DataFrame({"text": pd.Series(dtype=str), "source": pd.Series(dtype=str)})
    pool = unlabelled_pool(exclude_ground_truths, exclude, max_words)
    if 0 < n < len(pool):
        rng = np.random.default_rng(seed)
        words = pool["source"].isin(UNLABELLED_LEXICONS).to_numpy()
        order = np.concatenate(
            [rng.permutation(np.flatnonzero(words)), rng.permutation(np.flatnonzero(~words))]
        )
        pool = pool.iloc[np.sort(order[:n])]
    return pool.reset_index(drop=True)
