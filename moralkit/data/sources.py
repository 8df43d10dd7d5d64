"""The registry of ground truths: for each, its files, its reader and its prototype rule.

A ground truth is a named way of turning manifest files into the source table of
:mod:`moralkit.data.moral_vectors` (book: Methods › Ground truths, methods/ground-truths.md).
:func:`moralkit.data.load_records` looks the name up here; adding a ground truth means adding
one :class:`GroundTruth` to :data:`REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from moralkit.data.dictionaries import dictionary_items, parse_dic, reference_vocabulary
from moralkit.data.emfd import emfd_items
from moralkit.data.manifest import Manifest
from moralkit.data.moral_strength import MORALSTRENGTH_FILES, moral_strength_items
from moralkit.data.moral_vectors import SourceItems
from moralkit.data.reading import read_table, read_text
from moralkit.data.social_chem import read_social_chem_file, social_chem_items

#: ``{manifest name: (local path, sha256)}``, what :func:`moralkit.data.fetch` hands a reader.
Files = dict[str, tuple[Path, str]]


@dataclass(frozen=True)
class GroundTruth:
    """One ground truth: manifest files, reader, prototype rule, whether it has typicality."""

    name: str
    files: tuple[str, ...]
    read: Callable[[Files, Manifest], SourceItems]
    prototype_rule: str
    has_typicality: bool
    description: str


def _read_social_chem(files: Files, manifest: Manifest) -> SourceItems:
    raw = [read_social_chem_file(path, manifest[name], sha) for name, (path, sha) in files.items()]
    return social_chem_items(raw)


def _read_moral_strength(files: Files, manifest: Manifest) -> SourceItems:
    return moral_strength_items({f: files[n][0] for f, n in MORALSTRENGTH_FILES.items()})


def _read_emfd(files: Files, manifest: Manifest) -> SourceItems:
    return emfd_items(files["emfd"][0])


def _read_dic(name: str, files: Files, vocabulary: list[str] | None) -> SourceItems:
    path = files[name][0]
    label = f"{name} ({path})"
    source = "mfd2" if name == "mfd2" else "mfd"
    return dictionary_items(parse_dic(read_text(path, label), label), source, label, vocabulary)


def _read_mfd2(files: Files, manifest: Manifest) -> SourceItems:
    return _read_dic("mfd2", files, None)


def _vocabulary(files: Files) -> list[str]:
    """The offline lexicons' words, for expanding the original MFD's wildcard stems."""
    words = list(read_table(files["emfd"][0], ["word"], label="emfd")["word"].dropna())
    mfd2 = parse_dic(read_text(files["mfd2"][0], "mfd2"), "mfd2")
    words += [term for term, _ in mfd2.entries]
    for name in MORALSTRENGTH_FILES.values():
        words += list(read_table(files[name][0], ["WORD"], sep="\t", label=name)["WORD"].dropna())
    return reference_vocabulary(words)


def _read_mfd(files: Files, manifest: Manifest) -> SourceItems:
    return _read_dic("mft-original", files, _vocabulary(files))


_LEXICON_FILES = ("emfd", "mfd2", *MORALSTRENGTH_FILES.values())

REGISTRY: dict[str, GroundTruth] = {
    g.name: g
    for g in (
        GroundTruth(
            "socialchem",
            ("social-chem-101",),
            _read_social_chem,
            "paper",
            True,
            "the official Social-Chem-101 v1.0 release (355,922 rows), paper-exact",
        ),
        GroundTruth(
            "socialchem-subset",
            ("social-chem-101-obligatory", "social-chem-101-optional"),
            _read_social_chem,
            "paper",
            True,
            "real Social-Chem-101 rows with good and okay judgments only (no vice records)",
        ),
        GroundTruth(
            "moralstrength",
            tuple(MORALSTRENGTH_FILES.values()),
            _read_moral_strength,
            "lexicon",
            True,
            "the MoralStrength lexicon: 1-9 ratings per foundation, both poles",
        ),
        GroundTruth(
            "emfd",
            ("emfd",),
            _read_emfd,
            "lexicon",
            True,
            "the extended MFD: highlight probability and sentiment per foundation",
        ),
        GroundTruth(
            "mfd2",
            ("mfd2",),
            _read_mfd2,
            "all",
            False,
            "Moral Foundations Dictionary 2.0: ten categories, no typicality",
        ),
        GroundTruth(
            "mfd",
            ("mft-original", *_LEXICON_FILES),
            _read_mfd,
            "all",
            False,
            "the original Moral Foundations Dictionary, wildcards expanded; no typicality",
        ),
    )
}
