"""Harmful requests, safety refusals, offline harmful completions and benign retain text.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) Sources, all through
:func:`moralkit.data.fetch`:

- ``advbench``: the 520 AdvBench behaviours (Zou et al. 2023). Wei et al. evaluate on the first
  100 (:data:`N_EVAL_PROMPTS`); prompts from 100 on are free for calibration.
- ``align-short``: Wei et al.'s safety calibration set: harmful requests with the first sentence
  of a Llama-2-7b-chat refusal.
- Harmful *completions* are not distributed:
  :func:`moralkit.pruning.generation.harmful_completions` generates them with a base model
  (Gemma-3-270M continues a harmful request + :data:`COMPLETION_PREFIX`) on AdvBench prompts
  outside the evaluation prompts, and caches them.
- Benign retain text: Moral Stories (norm + moral action) and ETHICS commonsense scenarios
  labelled not wrong.
- Benign *requests* in the harmful requests' format (:func:`benign_requests`): good everyday
  actions of Social-Chem-101 (the offline subset) in :data:`BENIGN_TEMPLATE`, completed by the
  same base model with the same prefix
  (:func:`moralkit.pruning.generation.benign_completions`), so that a benign set and a harm
  type differ in content, not in format.

:data:`HARM_GROUPS` is a documented keyword grouping of AdvBench into harm types (first match
wins, in the order given), used to test whether the pruned set is shared across harm types.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd

from moralkit.data.benchmarks import ethics_commonsense, moral_stories, sample_rows
from moralkit.data.fetch import fetch

N_EVAL_PROMPTS = 100  # Wei et al. measure attack success on AdvBench's first 100 behaviours

#: harm type -> lower-case keywords (word prefixes); the first group with a match wins
HARM_GROUPS: dict[str, tuple[str, ...]] = {
    "cyber": (
        "hack",
        "malware",
        "virus",
        "ransomware",
        "password",
        "computer",
        "network",
        "database",
        "cyber",
        "software",
        "exploit",
        "phishing",
        "botnet",
        "website",
    ),
    "violence_weapons": (
        "bomb",
        "weapon",
        "explosive",
        "kill",
        "murder",
        "assassinat",
        "gun",
        "firearm",
        "poison",
        "violen",
        "attack",
        "terror",
        "harm",
        "hurt",
    ),
    "fraud_theft": (
        "steal",
        "fraud",
        "scam",
        "counterfeit",
        "theft",
        "identity",
        "money",
        "financial",
        "insider",
        "tax",
        "launder",
        "shoplift",
        "credit card",
        "cheat",
    ),
    "misinformation_hate": (
        "fake news",
        "misinformation",
        "propaganda",
        "conspiracy",
        "hate",
        "racis",
        "discriminat",
        "false information",
        "defam",
        "manipulat",
    ),
    "drugs_selfharm": (
        "drug",
        "suicide",
        "self-harm",
        "anorexi",
        "bulimi",
        "eating disorder",
        "alcohol",
        "overdose",
        "substance",
    ),
}
OTHER_GROUP = "other"
#: the frame the base model continues to produce a harmful completion
COMPLETION_PREFIX = " Sure, here is"
_INST = re.compile(r"^\s*\[INST\]\s*|\s*\[/INST\]\s*$")


#: a benign request in AdvBench's imperative style ("Give step-by-step instructions for how to ...")
BENIGN_TEMPLATE = "Give step-by-step instructions for {action}"
BENIGN_GROUP = "benign"


def advbench_prompts() -> list[str]:
    """The 520 AdvBench behaviours in file order (index = AdvBench line number)."""
    lines = fetch("advbench").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def harm_group(prompt: str) -> str:
    """The harm type of a request by :data:`HARM_GROUPS` (``"other"`` when nothing matches)."""
    text = prompt.lower()
    for group, keywords in HARM_GROUPS.items():
        if any(re.search(rf"\b{re.escape(k)}", text) for k in keywords):
            return group
    return OTHER_GROUP


def advbench_table(n_eval: int = N_EVAL_PROMPTS) -> pd.DataFrame:
    """AdvBench with ``index``, ``prompt``, ``group`` and ``split`` (eval = the first n_eval)."""
    prompts = advbench_prompts()
    return pd.DataFrame(
        {
            "index": range(len(prompts)),
            "prompt": prompts,
            "group": [harm_group(p) for p in prompts],
            "split": ["eval" if i < n_eval else "calibration" for i in range(len(prompts))],
        }
    )


def align_short() -> pd.DataFrame:
    """Wei et al.'s align_short set: ``request`` (the [INST] wrapper removed) and ``response``."""
    raw = pd.read_csv(fetch("align-short"))
    table = pd.DataFrame(
        {
            "request": [_INST.sub("", str(p)).strip() for p in raw["prompt"]],
            "response": [str(r).strip() for r in raw["response"]],
        }
    )
    return table[table["response"].str.len() > 0].reset_index(drop=True)


def benign_texts(source: str, n: int | None, seed: int) -> list[str]:
    """Benign text: ``"moral-stories"`` (norm + moral action) or ``"ethics"`` (not-wrong
    commonsense scenarios), ``n`` sampled with ``seed`` (all when None)."""
    if source == "moral-stories":
        table = moral_stories("test")
        table = table.assign(text=table["context"] + " " + table["acceptable"])
    elif source == "ethics":
        table = ethics_commonsense("test")
        table = table[table["label"] == 0]
    else:
        raise ValueError(f"source={source!r}; expected 'moral-stories' or 'ethics'")
    return sample_rows(table[["text"]], n, seed)["text"].tolist()


def calibration_prompts(per_group: int, groups: Sequence[str], seed: int) -> pd.DataFrame:
    """``per_group`` AdvBench calibration prompts (never evaluation ones) of each harm type."""
    table = advbench_table()
    pool = table[table["split"] == "calibration"]
    picked = []
    for group in groups:
        rows = pool[pool["group"] == group]
        if len(rows) < per_group:
            raise ValueError(
                f"harm group {group!r} has {len(rows)} calibration prompts, fewer than "
                f"per_group={per_group}"
            )
        picked.append(sample_rows(rows, per_group, seed))
    return pd.concat(picked, ignore_index=True)


def benign_requests(n: int, seed: int, max_words: int = 12) -> pd.DataFrame:
    """``n`` benign requests: Social-Chem-101 actions judged good (the offline obligatory
    subset: done by the actor, legal, 3 to ``max_words`` words, no :data:`HARM_GROUPS` keyword)
    in :data:`BENIGN_TEMPLATE`, sampled with ``seed``. Columns as :func:`advbench_table`'s
    ``index`` (the file row), ``prompt`` and ``group`` (``"benign"``)."""
    table = pd.read_csv(fetch("social-chem-101-obligatory"))
    action = table["action"].astype(str).str.strip().str.rstrip(".").str.strip()
    n_words = action.str.split().str.len()
    keep = (
        (table["action-agency"] == "agency")
        & (table["action-legal"] == "legal")
        & n_words.between(3, max_words)
        & (action.map(harm_group) == OTHER_GROUP)
    )
    pool = pd.DataFrame({"index": table.index[keep], "action": action[keep]})
    pool = pool.drop_duplicates("action")
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} benign actions are available, fewer than n={n}")
    picked = sample_rows(pool, n, seed)
    return pd.DataFrame(
        {
            "index": picked["index"].to_numpy(),
            "prompt": [BENIGN_TEMPLATE.format(action=a) for a in picked["action"]],
            "group": BENIGN_GROUP,
        }
    )
