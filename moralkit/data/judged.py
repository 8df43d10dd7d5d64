"""Social-Chem-101 actions judged from very bad to very good: the positive control's texts.

(book: Methods › Power, controls and stability, methods/power.md.) The four diagnostics each
run once more on a contrast every language model encodes, so that a null moral result can be
told apart from a diagnostic (or a sample) that finds nothing anywhere. The contrast is moral
valence: 500 Social-Chem-101 v1.0 actions, 100 for each human ``action-moral-judgment`` from
-2 (very bad) to 2 (very good), as released in TrustLLM's implicit-ethics task (manifest
``social-chem-101-judged``; read only through :func:`moralkit.data.fetch`). They are the
paper's own data source, of both signs, in the paper's text form (an action phrase read
inside the same prompt template).

:func:`valence_records` writes them in the record schema the diagnostics read, on **one
axis**: the file has no foundation labels, so every action sits in the first foundation's
slot (``care`` / ``harm``), which here means "good" / "bad" and nothing about care. Good
actions (judgment 1, 2) are the virtue pole, bad ones (-1, -2) the vice pole, judgment 0 is
neutral; typicality is ``|judgment| / 2`` (0.5 or 1.0) and the very good / very bad actions
are the prototypes. The other eight categories are empty (their centres are undefined and
their moral-vector columns constant), which every diagnostic already handles.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from moralkit.data.fetch import fetch_with_checksum
from moralkit.foundations import DIMENSIONS, FOUNDATIONS, VICES
from moralkit.records import MoralRecords

#: Manifest name of the judged actions.
JUDGED_FILE = "social-chem-101-judged"
#: Source name written into the records.
JUDGED_SOURCE = "socialchem-judged"
#: The human judgments and what they mean (Social-Chem-101's action-moral-judgment).
JUDGMENTS: dict[int, str] = {-2: "very bad", -1: "bad", 0: "expected/OK", 1: "good", 2: "very good"}
#: The axis' slot in the record schema: the first foundation, read as good (virtue) / bad (vice).
AXIS_FOUNDATION = FOUNDATIONS[0]
POLE_NAMES: dict[str, str] = {"virtue": "good", "vice": "bad", "neutral": "neutral"}


def judged_actions() -> pd.DataFrame:
    """The judged actions: ``action_id``, ``text`` (the action as written) and ``judgment``.

    Exact duplicate texts (two in the file) keep their first row, so every text is one record.
    Raises ``ValueError`` naming the file when a judgment lies outside -2..2.
    """
    path, sha = fetch_with_checksum(JUDGED_FILE)
    with open(path, encoding="utf-8") as handle:
        items = json.load(handle)
    table = pd.DataFrame(
        {
            "action_id": [f"{JUDGED_SOURCE}-{i:03d}" for i in range(len(items))],
            "text": [str(item["action"]).strip() for item in items],
            "judgment": [float(item["label"]) for item in items],
        }
    )
    bad = sorted(set(table["judgment"]) - {float(j) for j in JUDGMENTS})
    if bad:
        raise ValueError(f"data file {JUDGED_FILE!r} ({path}) has judgments {bad}; expected -2..2")
    table = table.drop_duplicates("text", keep="first").reset_index(drop=True)
    table["judgment"] = table["judgment"].astype(int)
    table.attrs["sha256"] = sha
    return table


def valence_records(actions: pd.DataFrame | None = None) -> MoralRecords:
    """The judged actions as :class:`~moralkit.records.MoralRecords` on one valence axis.

    See the module docstring for the encoding. ``actions`` defaults to :func:`judged_actions`.
    """
    actions = judged_actions() if actions is None else actions
    judgment = actions["judgment"].to_numpy(dtype=int)
    pole = np.select([judgment > 0, judgment < 0], ["virtue", "vice"], "neutral")
    typicality = np.abs(judgment) / 2.0
    category = np.select(
        [judgment > 0, judgment < 0], [AXIS_FOUNDATION, VICES[0]], "neutral"
    ).astype(object)
    table = pd.DataFrame(
        {
            "record_id": actions["action_id"].to_numpy(),
            "source_id": actions["action_id"].to_numpy(),
            "source": JUDGED_SOURCE,
            "text": actions["text"].to_numpy(),
            "foundation": AXIS_FOUNDATION,
            "pole": pole,
            "category": category,
            "typicality": typicality,
            "is_prototype": np.abs(judgment) == 2,
            "stratum": np.where(
                pole == "neutral", "neutral", pole + np.where(np.abs(judgment) == 2, "_typical", "")
            ),
            "split": "test",
        }
    )
    for dim in DIMENSIONS:
        table[dim] = np.where(category == dim, typicality, 0.0)
    provenance = {
        "source": JUDGED_SOURCE,
        "files": {JUDGED_FILE: actions.attrs.get("sha256")},
        "n_records": len(table),
        "judgments": {
            JUDGMENTS[int(k)]: int(v)
            for k, v in pd.Series(judgment).value_counts().sort_index().items()
        },
        "axis": f"{AXIS_FOUNDATION}/{VICES[0]} slots read as good/bad",
    }
    return MoralRecords(table, provenance)
