"""The ground truths a chapter can ask for, their cached record tables, and paper counts.

``load_records(name)`` fetches the source files (:mod:`moralkit.data.fetch`), builds the
expanded record table (paper §1.1-1.4; book: Methods › Data, methods/data.md), marks its
prototypes by the ground truth's rule (:mod:`moralkit.data.prototypes`) and caches it as
parquet in ``$MORALKIT_CACHE/records/``, keyed by the files' sha256 (their content, never
their size or modification time), the split seed and the code version, so a second call only
re-verifies the files and reads the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from moralkit import __version__
from moralkit.data.fetch import fetch_with_checksum
from moralkit.data.manifest import Manifest, load_manifest
from moralkit.data.moral_vectors import count_summary, explode_records
from moralkit.data.prototypes import assign_prototypes
from moralkit.data.reading import read_text
from moralkit.data.sources import REGISTRY
from moralkit.data.subset import stratified_subset
from moralkit.data.user_ground_truth import load_user_records
from moralkit.data.user_tables import TABLE_FORMATS, table_format
from moralkit.foundations import FOUNDATION_LABELS
from moralkit.io import atomic_write
from moralkit.paths import cache_dir
from moralkit.records import MoralRecords

#: The ground truths moralkit knows (see :data:`moralkit.data.sources.REGISTRY`).
GROUND_TRUTHS: tuple[str, ...] = tuple(REGISTRY)
#: Manifest files each ground truth is built from.
GROUND_TRUTH_FILES: dict[str, tuple[str, ...]] = {g.name: g.files for g in REGISTRY.values()}
FILE_KINDS = "CSV, TSV, JSONL or Parquet"
_ALLOWED = f"one of {', '.join(GROUND_TRUTHS)} or the path of a {FILE_KINDS} file" + (
    f" ({', '.join(sorted(TABLE_FORMATS))})"
)
#: Bump when the record-building logic changes: old cache entries are then ignored.
RECORDS_FORMAT = 2
_METADATA_KEY = b"moralkit-provenance"

# Paper numbers (paper §1.1, §1.4, §1.5; book: Methods › Data, methods/data.md).
PAPER_RAW_ROWS = 355_922
PAPER_EXPANDED_RECORDS = 251_000  # reported as "251k"
PAPER_TRAIN_RECORDS = 201_023
PAPER_VAL_RECORDS = 25_170
PAPER_SUBSET = 16_315


def is_ground_truth_file(value: str) -> bool:
    """Whether ``value`` names a file rather than a registered ground truth (see
    :mod:`moralkit.data.user_ground_truth`): it has a table suffix or a path separator."""
    value = str(value).strip()
    return value not in GROUND_TRUTHS and (
        table_format(value) is not None or "/" in value or os.sep in value
    )


def _unknown(name: str) -> ValueError:
    return ValueError(
        f"unknown ground truth {name!r}; valid names: {list(GROUND_TRUTHS)}, or the path of a "
        f"{FILE_KINDS} file in the record schema (book: Methods › Ground truths)"
    )


def check_ground_truth(name: str) -> str:
    """``name`` if it is a known ground truth, a ground-truth file as an absolute path, or a
    ``ValueError`` listing the valid names (a path works too).

    A file is checked to exist and to have a table suffix here; its rows when it is read.
    """
    name = str(name).strip()
    if name in GROUND_TRUTHS:
        return name
    if not is_ground_truth_file(name):
        raise _unknown(name)
    path = Path(name).expanduser().resolve()
    if table_format(path) is None:
        raise ValueError(
            f"ground-truth file {path}: unknown table format {path.suffix!r}; use a "
            f"{FILE_KINDS} file"
        )
    if not path.is_file():
        raise ValueError(f"ground-truth file {path} does not exist (or is not a file)")
    return str(path)


def ground_truth_names(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"a"``, ``"a,b"`` or ``["a", "b"]`` -> validated list of ground-truth names and files."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [check_ground_truth(str(x).strip()) for x in items if str(x).strip()]
    if not names:
        raise ValueError(f"no ground truth named in {value!r}; valid names: {list(GROUND_TRUTHS)}")
    return names


def ground_truth_parameter(value: object, name: str = "ground_truth") -> str | list[str]:
    """The ``ground_truth`` parameter checked: one name or file stays one string, several (a
    list or ``"a,b"``) become a list; files become absolute paths. ``ValueError`` names the
    parameter, the value and what is allowed."""
    if not isinstance(value, str | list | tuple) or not str(value).strip():
        raise ValueError(f"parameter {name}={value!r}: expected {_ALLOWED}")
    try:
        names = ground_truth_names(value)
    except ValueError as err:
        raise ValueError(f"parameter {name}={value!r}: {err}") from None
    return names[0] if isinstance(value, str) and len(names) == 1 else names


def _cache_path(name: str, checksums: dict[str, str], split_seed: int) -> Path:
    key = json.dumps(
        {
            "ground_truth": name,
            "files": checksums,
            "split_seed": split_seed,
            "format": RECORDS_FORMAT,
            "moralkit": __version__,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_dir("records") / f"{name}-{digest}.parquet"


def _read_cached(path: Path) -> MoralRecords | None:
    try:
        arrow = pq.read_table(path)
        provenance = json.loads(arrow.schema.metadata[_METADATA_KEY])
        return MoralRecords(arrow.to_pandas(), provenance)
    except Exception:  # a damaged or foreign cache entry is rebuilt, never trusted
        return None


def _write_cached(records: MoralRecords, path: Path) -> None:
    arrow = pa.Table.from_pandas(records.table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[_METADATA_KEY] = json.dumps(records.provenance).encode()
    arrow = arrow.replace_schema_metadata(metadata)
    atomic_write(path, lambda tmp: pq.write_table(arrow, tmp), suffix=".parquet")


def load_records(
    ground_truth: str,
    *,
    split_seed: int = 42,
    manifest: Manifest | None = None,
    use_cache: bool = True,
) -> MoralRecords:
    """All expanded records of a ground truth, with their train/val/test split.

    paper §1.1-1.4 (book: Methods › Data, methods/data.md; Methods › Ground truths,
    methods/ground-truths.md). ``ground_truth`` is one of :data:`GROUND_TRUTHS`:
    ``"socialchem"`` (the official Social-Chem-101 zip, 355,922 rows; needs the file or
    internet), ``"socialchem-subset"`` (real Social-Chem rows with good/okay judgments only:
    no vice records), or one of the offline lexicons with both poles: ``"moralstrength"``,
    ``"emfd"``, ``"mfd2"`` and ``"mfd"`` (the original MFD); the last two have no typicality
    (``records.has_typicality`` is False). A path to a CSV, TSV, JSONL or Parquet file in the
    record schema of :mod:`moralkit.data.user_ground_truth` is read from that file.
    ``manifest`` replaces the package manifest (tests
    use this to point at small files). The result's ``provenance`` holds the ground truth,
    ``files`` ({manifest name: sha256}), the split seed, ``has_typicality``,
    ``prototype_rule`` (rule and per-category thresholds) and ``counts`` (raw rows, cleaned
    rows, expanded records, per split/pole, what was dropped).
    """
    name = check_ground_truth(ground_truth)
    if name not in REGISTRY:  # a user's file: read each time (no download, no cache)
        return load_user_records(name, split_seed=split_seed)
    spec = REGISTRY[name]
    manifest = manifest if manifest is not None else load_manifest()
    files = {name: fetch_with_checksum(name, manifest) for name in spec.files}
    checksums = {name: sha for name, (_, sha) in files.items()}
    cache_path = _cache_path(ground_truth, checksums, split_seed)
    if use_cache and cache_path.is_file():
        cached = _read_cached(cache_path)
        if cached is not None:
            return cached

    built = spec.read(files, manifest)
    table = explode_records(built.items, source=ground_truth, split_seed=split_seed)
    table, prototypes = assign_prototypes(table, spec.prototype_rule)
    provenance = {
        "ground_truth": ground_truth,
        "paper_section": "paper §1.1-1.4 (book: Methods › Data, methods/data.md)",
        "files": checksums,
        "licences": {name: manifest[name].licence for name in checksums},
        "split_seed": split_seed,
        "records_format": RECORDS_FORMAT,
        "moralkit_version": __version__,
        "has_typicality": spec.has_typicality,
        "prototype_rule": prototypes,
        "counts": count_summary(table, built),
    }
    records = MoralRecords(table, provenance)
    if use_cache:
        _write_cached(records, cache_path)
    return records


def diagnostic_records(
    ground_truth: str,
    sample_scale: float = 1.0,
    seed: int = 42,
    *,
    manifest: Manifest | None = None,
) -> MoralRecords:
    """The stratified diagnostic subset of a ground truth (paper §1.5; book: Methods › Data).

    ``load_records(ground_truth)`` followed by ``stratified_subset(records, sample_scale,
    seed)``; the split seed stays the paper's 42.
    """
    records = load_records(ground_truth, manifest=manifest)
    return stratified_subset(records, scale=sample_scale, seed=seed)


def paper_bucket_counts(manifest: Manifest | None = None) -> pd.DataFrame:
    """The paper's own expanded-record counts from the MoralMi bucket files (paper §1.4).

    Tidy table: ``split`` (train | val), ``foundation``, ``pole`` (virtue | vice | neutral),
    ``typicality`` (0.0 for neutral), ``records``.
    """
    manifest = manifest if manifest is not None else load_manifest()
    rows = []
    for split, name in (("train", "moralmi-train-buckets"), ("val", "moralmi-val-buckets")):
        path, _ = fetch_with_checksum(name, manifest)
        buckets = json.loads(read_text(path, f"{name} ({path})"))
        for label, poles in buckets.items():
            if label not in FOUNDATION_LABELS:
                raise ValueError(f"bucket file {path} has unknown dimension {label!r}")
            for pole, strata in poles.items():
                for score, ids in strata.items():
                    rows.append((split, FOUNDATION_LABELS[label], pole, float(score), len(ids)))
    table = pd.DataFrame(rows, columns=["split", "foundation", "pole", "typicality", "records"])
    return table.sort_values(["split", "foundation", "pole", "typicality"], ignore_index=True)


def compare_with_paper(records: MoralRecords, manifest: Manifest | None = None) -> pd.DataFrame:
    """Our counts beside the paper's: columns ``quantity, paper, measured, matches, note``.

    paper §1.1, §1.4, §1.5 (book: Methods › Data, methods/data.md). Works on the full records
    of :func:`load_records` or on a subset from :func:`stratified_subset` (full-set counts come
    from the provenance). Only ``"socialchem"`` (the official full file) is expected to match;
    other ground truths are listed for orientation and get ``matches`` = NA. The paper's
    per-pole train counts come from :func:`paper_bucket_counts`.
    """
    prov = records.provenance
    counts = prov.get("counts")
    if counts is None:
        raise ValueError("records carry no provenance counts; build them with load_records()")
    name = prov.get("ground_truth", "?")
    comparable = name == "socialchem"
    if "subset" in prov:
        subset_size, subset_scale = prov["subset"]["size"], prov["subset"]["scale"]
    else:
        subset_size, subset_scale = len(stratified_subset(records)), 1.0
    buckets = paper_bucket_counts(manifest)
    rows = _paper_rows(counts, buckets[buckets["split"] == "train"], subset_size, subset_scale)
    out = [_judge_row(row, comparable, name) for row in rows]
    table = pd.DataFrame(out, columns=["quantity", "paper", "measured", "matches", "note"])
    table["paper"] = table["paper"].astype("Int64")
    table["measured"] = table["measured"].astype("Int64")
    table["matches"] = table["matches"].astype("boolean")
    table.insert(0, "ground_truth", name)
    return table


# (quantity, paper value, measured value, matching rule, note); rule None: not compared
_PaperRow = tuple[str, float, int, str | None, str]


def _paper_rows(
    counts: dict, train: pd.DataFrame, subset_size: int, subset_scale: float
) -> list[_PaperRow]:
    """The quantities the paper reports, each with our count and how the two should match."""

    def by(split: str, pole: str | None = None) -> int:
        key = split if pole is None else f"{split}/{pole}"
        source = counts["by_split"] if pole is None else counts["by_split_pole"]
        return int(source.get(key, 0))

    rows = [
        ("raw rows", PAPER_RAW_ROWS, counts["raw_rows"], "exact", "social-chem-101.v1.0.tsv rows"),
        ("unique cleaned rows", np.nan, counts["cleaned_rows"], None, "not reported by the paper"),
        (
            "expanded records (row x foundation)",
            PAPER_EXPANDED_RECORDS,
            counts["expanded_records"],
            "thousands",
            "paper reports '251k'; (201,023 + 25,170) / 0.9 = 251.3k",
        ),
        ("train records", PAPER_TRAIN_RECORDS, by("train"), "exact", "train_buckets.json"),
        ("val records", PAPER_VAL_RECORDS, by("val"), "exact", "val_buckets.json"),
        ("test records", np.nan, by("test"), None, "not reported (about 25.1k implied)"),
    ]
    for pole in ("virtue", "vice", "neutral"):
        paper = int(train.loc[train["pole"] == pole, "records"].sum())
        rows.append((f"train {pole} records", paper, by("train", pole), "exact", "buckets"))
    rows.append(
        (
            "diagnostic subset",
            PAPER_SUBSET,
            subset_size,
            "exact" if subset_scale == 1.0 else None,
            f"stratified subset at scale {subset_scale:g}; its size is the sum of "
            "min(cap, stratum size), so it does not depend on the random draw",
        )
    )
    return rows


def _judge_row(row: _PaperRow, comparable: bool, name: str) -> tuple:
    """``row`` with ``matches`` (NA when not compared) and, off the paper's file, a caveat."""
    quantity, paper, measured, rule, note = row
    if not comparable or rule is None:
        matches = pd.NA
    elif rule == "thousands":
        matches = round(measured / 1000) == round(paper / 1000)
    else:
        matches = measured == paper
    if not comparable:
        note = f"{note} [{name}: not the paper's file; for orientation only]"
    return quantity, paper, measured, matches, note
