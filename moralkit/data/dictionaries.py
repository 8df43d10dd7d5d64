"""Moral Foundations Dictionaries in LIWC ``.dic`` format (MFD 2.0, the original MFD).

Offline ground truths in the paper's record schema (book: Methods › Ground truths,
methods/ground-truths.md). A ``.dic`` file has a header between its first two ``%`` lines
mapping category ids to names (``1 care.virtue`` ... ``10 sanctity.vice``; the original MFD
adds ``11 moral``), then one entry per line: a term followed by one or more category ids.

Mapping:

- each (term, category) becomes one record of that foundation and pole; a dictionary has no
  typicality, so every record is a **prototype** (typicality 1.0) and the records carry
  ``has_typicality = False`` (the gradient diagnostic does not apply);
- multi-word phrases (MFD 2.0's "golden rule") are kept as they are;
- a term listed under both poles of one foundation (MFD 2.0's "wound", "vulnerable") is
  contradictory and dropped for that foundation; the count goes into the provenance;
- the original MFD's general-morality category ``moral`` has no foundation or pole and is
  skipped;
- a wildcard stem (``harm*``) is expanded, as LIWC matches it, to every word of a reference
  vocabulary that starts with the stem (case-insensitively). The vocabulary is the words of
  the other offline lexicons (eMFD, MFD 2.0, MoralStrength): MoralStrength itself was built by
  expanding the original MFD's stems, so it holds their real word forms. A stem no vocabulary
  word starts with is dropped and counted. The expansion inherits LIWC's looseness
  (``harm*`` also matches "harmless").

Source ids are the term, so a term's records share one split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from moralkit.data.moral_vectors import FOUNDATION_FLAGS, SourceItems
from moralkit.foundations import FOUNDATIONS

_ID = re.compile(r"^\d+$")
_WORD = re.compile(r"^[a-z][a-z'-]*$")


@dataclass(frozen=True)
class DicFile:
    """A parsed ``.dic`` file: category names by id, and (term, category ids) entries."""

    categories: dict[int, str]
    entries: list[tuple[str, tuple[int, ...]]]


def parse_dic(text: str, label: str) -> DicFile:
    """Parse LIWC ``.dic`` text (tab- or space-separated); errors name ``label`` and the line."""
    lines = text.splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == "%"]
    if len(marks) < 2:
        raise ValueError(f"dictionary {label} lacks the two '%' lines around its category header")
    categories: dict[int, str] = {}
    for number, line in enumerate(lines[marks[0] + 1 : marks[1]], start=marks[0] + 2):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not _ID.match(parts[0]):
            raise ValueError(f"dictionary {label}, line {number}: expected '<id> <name>'")
        categories[int(parts[0])] = parts[1]
    entries = []
    for number, line in enumerate(lines[marks[1] + 1 :], start=marks[1] + 2):
        parts = line.split()
        if not parts:
            continue
        n_ids = next((i for i, p in enumerate(reversed(parts)) if not _ID.match(p)), len(parts))
        ids = tuple(int(p) for p in parts[len(parts) - n_ids :])
        term = " ".join(parts[: len(parts) - n_ids])
        unknown = [i for i in ids if i not in categories]
        if not ids or not term or unknown:
            raise ValueError(
                f"dictionary {label}, line {number}: expected '<term> <category id>...' with ids "
                f"from {sorted(categories)}, got {line.strip()!r}"
            )
        entries.append((term, ids))
    return DicFile(categories=categories, entries=entries)


def reference_vocabulary(words: Iterable[str]) -> list[str]:
    """Lower-cased single words (letters, ``'`` and ``-``) for wildcard expansion, sorted."""
    return sorted({w.strip().lower() for w in words if _WORD.match(w.strip().lower())})


def _expand(term: str, vocabulary: list[str] | None, label: str) -> list[str]:
    if not term.endswith("*"):
        return [term]
    if vocabulary is None:
        raise ValueError(f"dictionary {label} has wildcard {term!r} but no vocabulary to expand")
    stem = term[:-1].lower()
    return [w for w in vocabulary if w.startswith(stem)]


def dictionary_items(
    dic: DicFile, source: str, label: str, vocabulary: list[str] | None = None
) -> SourceItems:
    """One source item per (term, foundation), every one a prototype; see module docstring."""
    rows, dropped = [], {"general_morality": 0, "unmatched_wildcards": 0, "contradictory": 0}
    for term, ids in dic.entries:
        words = _expand(term, vocabulary, label)
        dropped["unmatched_wildcards"] += not words
        for cid in ids:
            name = dic.categories[cid]
            if name == "moral":
                dropped["general_morality"] += 1
                continue
            foundation, _, pole = name.partition(".")
            if foundation not in FOUNDATIONS or pole not in ("virtue", "vice"):
                raise ValueError(f"dictionary {label}: unknown category {name!r} (id {cid})")
            rows += [(w, foundation, pole) for w in words]
    table = pd.DataFrame(rows, columns=["text", "foundation", "pole"]).drop_duplicates()
    poles = table.groupby(["text", "foundation"])["pole"].transform("nunique")
    dropped["contradictory"] = int((poles > 1).sum())
    table = table[poles == 1].sort_values(["text", "foundation"], ignore_index=True)
    items = pd.DataFrame(
        {
            "source_id": source + "_" + table["text"],
            "text": table["text"],
            "m_virtue": (table["pole"] == "virtue").astype(float),
            "m_vice": (table["pole"] == "vice").astype(float),
        }
    )
    for flag, f in zip(FOUNDATION_FLAGS, FOUNDATIONS, strict=True):
        items[flag] = table["foundation"] == f
    return SourceItems(
        items=items,
        raw_rows=len(dic.entries),
        cleaned_rows=int(table["text"].nunique()),
        dropped=dropped,
    )
