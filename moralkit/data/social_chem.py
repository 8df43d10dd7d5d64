"""Social-Chem-101 as moral source items, paper-exact (paper §1.1-1.3; book: Methods › Data).

Reads the official ``social-chem-101.v1.0.tsv`` (inside the release zip) or the
comma-separated subset files with the same 25 columns, applies the paper's cleaning and
computes each row's pole values. Exploding into records is
:func:`moralkit.data.moral_vectors.explode_records`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from moralkit.data.fetch import DataChecksumError, verify_row_count
from moralkit.data.manifest import DataFile
from moralkit.data.moral_vectors import FOUNDATION_FLAGS, SourceItems, pole_values
from moralkit.data.reading import parse_numbers, read_table
from moralkit.foundations import FOUNDATION_LABELS, FOUNDATIONS
from moralkit.io import atomic_path
from moralkit.paths import cache_dir

#: The 25 columns of social-chem-101.v1.0.tsv, in file order (paper §1.1).
SOCIAL_CHEM_COLUMNS: tuple[str, ...] = (
    "area", "m", "split", "rot-agree", "rot-categorization", "rot-moral-foundations",
    "rot-char-targeting", "rot-bad", "rot-judgment", "action", "action-agency",
    "action-moral-judgment", "action-agree", "action-legal", "action-pressure",
    "action-char-involved", "action-hypothetical", "situation", "situation-short-id", "rot",
    "rot-id", "rot-worker-id", "breakdown-worker-id", "n-characters", "characters",
)  # fmt: skip
#: The columns the paper uses (paper §1.2); only these are read.
USED_COLUMNS: tuple[str, ...] = (
    "m", "rot-bad", "rot-moral-foundations", "action", "action-moral-judgment", "action-agree",
)  # fmt: skip
#: Columns that must be non-null for a row to be kept (paper §1.2 step 3).
REQUIRED_NON_NULL: tuple[str, ...] = (
    "action", "rot-moral-foundations", "action-moral-judgment", "action-agree",
)  # fmt: skip
SOURCE_ID_PREFIX = "socialchem"


def extract_member(zip_path: Path, member: str, sha256: str) -> Path:
    """Extract the zip member whose base name is ``member`` into the cache (atomically).

    The target folder is keyed by the zip's sha256, so a new release never reuses an old
    extraction.
    """
    target = cache_dir("extracted") / sha256[:16] / member
    if target.is_file():
        return target
    with zipfile.ZipFile(zip_path) as archive:
        names = [n for n in archive.namelist() if Path(n).name == member]
        if len(names) != 1:
            raise ValueError(
                f"zip {zip_path} should contain exactly one {member!r}; it holds "
                f"{archive.namelist()[:20]}"
            )
        with atomic_path(target) as tmp, archive.open(names[0]) as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    return target


def read_social_chem_file(path: Path, entry: DataFile, sha256: str) -> pd.DataFrame:
    """The used columns of one Social-Chem file (zip with a TSV inside, TSV or CSV), as text.

    Where the manifest pins no sha256 (the official zip), the parsed row count must equal the
    manifest's ``rows`` (355,922 for the official release).
    """
    label = f"{entry.name} ({path})"
    if zipfile.is_zipfile(path):
        if entry.member is None:
            raise ValueError(f"manifest entry {entry.name!r} is a zip but names no member")
        table_path = extract_member(path, entry.member, sha256)
        label = f"{entry.name} ({path} :: {entry.member})"
    elif entry.member is not None:  # a cut download of the zip: say so, not "bad UTF-8"
        raise DataChecksumError(
            f"data file {entry.name!r} at {path} should be a zip holding {entry.member!r} but is "
            f"not a complete zip archive: the download from {entry.url} is truncated or not "
            "the release. Remove the file to download it again."
        )
    else:
        table_path = path
    sep = "\t" if table_path.suffix.lower() in {".tsv", ".tab"} else ","
    raw = read_table(table_path, USED_COLUMNS, sep=sep, label=label)
    verify_row_count(entry, len(raw), label)
    raw.attrs["label"] = label
    return raw


def parse_foundations(labels: pd.Series, label: str) -> np.ndarray:
    """'|'-separated ``rot-moral-foundations`` -> (n, 5) bool mask in ``FOUNDATIONS`` order."""
    mask = np.zeros((len(labels), len(FOUNDATIONS)), dtype=bool)
    index_of = {name: FOUNDATIONS.index(short) for name, short in FOUNDATION_LABELS.items()}
    for i, text in enumerate(labels.to_numpy(dtype=object)):
        for token in str(text).split("|"):
            token = token.strip()
            if not token:
                continue
            if token not in index_of:
                raise ValueError(
                    f"column 'rot-moral-foundations' in file {label} holds unknown foundation "
                    f"{token!r}; expected '|'-separated {sorted(index_of)}"
                )
            mask[i, index_of[token]] = True
    return mask


def clean_social_chem(raw: pd.DataFrame, label: str) -> pd.DataFrame:
    """Keep rows with rot-bad == 0, m == 1 and the four used fields present (§1.2)."""
    rot_bad = parse_numbers(raw["rot-bad"], "rot-bad", label)
    m = parse_numbers(raw["m"], "m", label)
    keep = (rot_bad == 0) & (m == 1) & raw[list(REQUIRED_NON_NULL)].notna().all(axis=1)
    return raw[keep.to_numpy()].reset_index(drop=True)


def social_chem_items(raw_tables: list[pd.DataFrame]) -> SourceItems:
    """Clean the concatenated raw tables and compute pole values and foundation flags.

    Source ids are ``socialchem_<6-digit index>`` over the cleaned rows in file order
    (our reconstruction of the numbering in the paper's code; paper §1.3, methods/data.md).
    """
    cleaned = []
    for raw in raw_tables:
        label = raw.attrs.get("label", "social-chem file")
        rows = clean_social_chem(raw, label)
        judgment = parse_numbers(
            rows["action-moral-judgment"], "action-moral-judgment", label, (-2, -1, 0, 1, 2)
        )
        agree = parse_numbers(rows["action-agree"], "action-agree", label, (0, 1, 2, 3, 4))
        m_virtue, m_vice = pole_values(judgment.to_numpy(), agree.to_numpy())
        flags = parse_foundations(rows["rot-moral-foundations"], label)
        part = pd.DataFrame({"text": rows["action"].astype(str), "m_virtue": m_virtue})
        part["m_vice"] = m_vice
        for j, flag in enumerate(FOUNDATION_FLAGS):
            part[flag] = flags[:, j]
        cleaned.append(part)
    items = pd.concat(cleaned, ignore_index=True)
    items.insert(0, "source_id", [f"{SOURCE_ID_PREFIX}_{i:06d}" for i in range(len(items))])
    raw_rows = sum(len(r) for r in raw_tables)
    return SourceItems(items=items, raw_rows=raw_rows, cleaned_rows=len(items))
