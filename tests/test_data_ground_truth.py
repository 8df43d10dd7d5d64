"""Public entry points: split, stratified subset, record cache, paper comparison."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from shared_data import SHARED_DATA, needs_mirror

import moralkit.data.ground_truth as ground_truth
from moralkit.data import (
    GROUND_TRUTHS,
    compare_with_paper,
    diagnostic_records,
    load_records,
    paper_bucket_counts,
    split_by_id,
    stratified_subset,
)
from moralkit.data.moral_vectors import FOUNDATION_FLAGS, explode_records
from moralkit.data.sources import REGISTRY
from moralkit.data.subset import scaled_cap
from moralkit.foundations import FOUNDATIONS
from moralkit.records import MoralRecords


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(SHARED_DATA))


def test_split_by_id_fractions_and_determinism():
    ids = [f"id{i}" for i in range(1000)]
    split = split_by_id(ids)
    assert split.value_counts().to_dict() == {"train": 800, "val": 100, "test": 100}
    assert split.equals(split_by_id(ids, seed=42))
    assert not split.equals(split_by_id(ids, seed=7))
    # numpy's legacy seeded shuffle of the unique ids (paper §1.4)
    shuffled = np.array(ids, dtype=object)
    np.random.RandomState(42).shuffle(shuffled)
    assert set(shuffled[:800]) == {i for i, s in zip(ids, split, strict=True) if s == "train"}
    assert set(shuffled[800:900]) == {i for i, s in zip(ids, split, strict=True) if s == "val"}
    # repeated ids share a split; the split is over unique ids (7 unique: 5/0/2)
    ids = ["a", "b", "a", "c", "d", "e", "f", "g", "b"]
    repeated = split_by_id(ids)
    assert repeated[0] == repeated[2] and repeated[1] == repeated[8]
    per_id = dict(zip(ids, repeated, strict=True))
    assert pd.Series(per_id).value_counts().to_dict() == {"train": 5, "test": 2}


def synthetic_records(sizes: dict[tuple[str, str, float], int]) -> MoralRecords:
    """Records with exactly ``sizes[(foundation, pole, typicality)]`` items per stratum."""
    rows = []
    for (foundation, pole, typ), n in sizes.items():
        for i in range(n):
            row = {
                "source_id": f"{foundation}-{pole}-{typ}-{i}",
                "text": f"synthetic {i}",
                "m_virtue": typ if pole == "virtue" else 0.0,
                "m_vice": typ if pole == "vice" else 0.0,
            }
            row.update({flag: flag == f"has_{foundation}" for flag in FOUNDATION_FLAGS})
            rows.append(row)
    table = explode_records(pd.DataFrame(rows), source="synthetic")
    return MoralRecords(table, {"ground_truth": "synthetic"})


SIZES = {
    ("care", "virtue", 0.5): 500,  # capped at 300
    ("care", "virtue", 0.125): 40,  # sparse: all kept
    ("care", "virtue", 1.0): 200,  # prototypes: capped at 150
    ("care", "vice", 0.75): 301,
    ("care", "vice", 1.0): 149,
    ("care", "neutral", 0.0): 350,  # capped at 300
    ("sanctity", "vice", 0.25): 10,
    ("sanctity", "neutral", 0.0): 5,
}


def test_stratified_subset_caps():
    records = synthetic_records(SIZES)
    assert len(records) == sum(SIZES.values())
    subset = stratified_subset(records)
    got = subset.table.groupby(["foundation", "pole", "typicality"]).size().to_dict()
    assert got == {
        ("care", "neutral", 0.0): 300,
        ("care", "vice", 0.75): 300,
        ("care", "vice", 1.0): 149,
        ("care", "virtue", 0.125): 40,
        ("care", "virtue", 0.5): 300,
        ("care", "virtue", 1.0): 150,
        ("sanctity", "neutral", 0.0): 5,
        ("sanctity", "vice", 0.25): 10,
    }
    assert subset.provenance["subset"]["size"] == 1254
    assert subset.provenance["subset"]["caps_per_foundation"] == {
        "non_typical": 300,
        "prototype": 150,
        "neutral": 300,
    }
    assert subset.table["record_id"].is_unique
    # deterministic for a seed, different for another, and a sub-table of the input
    again = stratified_subset(records)
    assert again.table["record_id"].tolist() == subset.table["record_id"].tolist()
    other = stratified_subset(records, seed=1)
    assert other.table["record_id"].tolist() != subset.table["record_id"].tolist()
    assert set(subset.table["record_id"]) <= set(records.table["record_id"])


def test_stratified_subset_scale_rounding():
    assert [scaled_cap(300, s) for s in (1.0, 0.1, 0.005, 0.0001, 2.0)] == [300, 30, 2, 1, 600]
    assert scaled_cap(150, 0.01) == 2  # 1.5 rounds half up (Python's round would give 2 too)
    assert scaled_cap(150, 0.03) == 5  # 4.5 rounds half up (Python's round gives 4)
    subset = stratified_subset(synthetic_records(SIZES), scale=0.1)
    got = subset.table.groupby(["foundation", "pole", "typicality"]).size().to_dict()
    assert got[("care", "virtue", 0.5)] == 30
    assert got[("care", "virtue", 1.0)] == 15
    assert got[("care", "neutral", 0.0)] == 30
    assert got[("sanctity", "vice", 0.25)] == 10
    with pytest.raises(ValueError, match="scale must be positive"):
        stratified_subset(synthetic_records(SIZES), scale=0)


def test_unknown_ground_truth_lists_valid_names():
    with pytest.raises(ValueError, match="valid names: \\['socialchem', 'socialchem-subset'"):
        load_records("socialchemistry")
    assert GROUND_TRUTHS == (
        "socialchem",
        "socialchem-subset",
        "moralstrength",
        "emfd",
        "mfd2",
        "mfd",
    )


@needs_mirror
def test_second_call_reads_the_cache(monkeypatch, tmp_path):
    first = load_records("moralstrength")
    assert len(list((tmp_path / "cache" / "records").glob("moralstrength-*.parquet"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the record table was rebuilt instead of read from the cache")

    spec = dataclasses.replace(REGISTRY["moralstrength"], read=fail)
    monkeypatch.setitem(REGISTRY, "moralstrength", spec)
    second = load_records("moralstrength")
    pd.testing.assert_frame_equal(first.table, second.table)
    assert second.provenance == first.provenance
    with pytest.raises(AssertionError, match="rebuilt"):
        load_records("moralstrength", split_seed=1)  # another key: must rebuild


@needs_mirror
def test_paper_bucket_counts():
    counts = paper_bucket_counts()
    assert counts.groupby("split")["records"].sum().to_dict() == {"train": 201_023, "val": 25_170}
    train = counts[counts["split"] == "train"].set_index(["foundation", "pole", "typicality"])
    assert train.loc[("care", "virtue", 1.0), "records"] == 1_392
    assert train.loc[("sanctity", "vice", 1.0), "records"] == 1_083
    assert train.loc[("care", "neutral", 0.0), "records"] == 34_163
    per_pole = counts[counts["split"] == "train"].groupby("pole")["records"].sum().to_dict()
    assert per_pole == {"neutral": 78_477, "vice": 77_583, "virtue": 44_963}
    assert set(counts["foundation"]) == set(FOUNDATIONS)


@needs_mirror
def test_compare_with_paper_and_diagnostic_records():
    records = load_records("moralstrength")
    table = compare_with_paper(records)
    assert list(table.columns) == [
        "ground_truth",
        "quantity",
        "paper",
        "measured",
        "matches",
        "note",
    ]
    row = table.set_index("quantity")
    assert row.loc["raw rows", "paper"] == 355_922
    assert row.loc["expanded records (row x foundation)", "measured"] == 2_845
    assert row.loc["unique cleaned rows", "measured"] == 2_845
    assert row.loc["train records", "paper"] == 201_023
    assert row.loc["val records", "paper"] == 25_170
    assert row.loc["train vice records", "paper"] == 77_583
    assert row.loc["diagnostic subset", "paper"] == 16_315
    assert table["matches"].isna().all()  # another data set: nothing claimed to match

    subset = diagnostic_records("moralstrength")
    # every MoralStrength stratum is below its cap, so the subset is the whole lexicon
    assert len(subset) == 2_845 and subset.provenance["subset"]["size"] == 2_845
    small = diagnostic_records("moralstrength", sample_scale=0.05)
    assert small.provenance["subset"]["caps_per_foundation"]["non_typical"] == 15
    assert small.table.groupby(["foundation", "pole", "typicality"]).size().max() <= 15
    assert compare_with_paper(small).set_index("quantity").loc["diagnostic subset", "measured"] == (
        len(small)
    )


def test_compare_with_paper_claims_matches_for_the_full_file(monkeypatch):
    """A socialchem table with the paper's counts is reported as matching."""
    counts = {
        "raw_rows": 355_922,
        "cleaned_rows": 250_000,
        "expanded_records": 251_262,
        "by_split": {"train": 201_023, "val": 25_170, "test": 25_069},
        "by_split_pole": {"train/virtue": 44_963, "train/vice": 77_583, "train/neutral": 78_476},
    }
    records = synthetic_records({("care", "virtue", 0.5): 3})
    records.provenance = {"ground_truth": "socialchem", "counts": counts}
    records.provenance["subset"] = {"size": 16_315, "scale": 1.0}
    buckets = pd.DataFrame(
        {
            "split": ["train"] * 3,
            "foundation": ["care"] * 3,
            "pole": ["virtue", "vice", "neutral"],
            "typicality": [0.5, 0.5, 0.0],
            "records": [44_963, 77_583, 78_477],
        }
    )
    monkeypatch.setattr(ground_truth, "paper_bucket_counts", lambda manifest=None: buckets)
    row = compare_with_paper(records).set_index("quantity")["matches"]
    assert row["raw rows"] and row["train records"] and row["val records"]
    assert row["expanded records (row x foundation)"]  # 251,262 rounds to 251k
    assert row["diagnostic subset"]
    assert not row["train neutral records"]  # off by one
    assert pd.isna(row["unique cleaned rows"])
