"""Social-Chem-101 pipeline (paper §1.2-1.4) on SYNTHETIC and real subset rows.

Expected values for tests/fixtures/synthetic_social_chem.tsv are computed by hand; the table
in tests/fixtures/README.md lists each row's fate.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import SHARED_DATA, needs_mirror

from moralkit.data import DataChecksumError, load_manifest, load_records
from moralkit.data.social_chem import parse_foundations, read_social_chem_file
from moralkit.foundations import DIMENSIONS

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "synthetic_social_chem.tsv"


def zipped_mirror(root: Path, tsv: Path = FIXTURE) -> Path:
    """A mirror folder holding the synthetic TSV packed like the official release zip."""
    target = root / "mirror" / "social-chem-101" / "social-chem-101.zip"
    target.parent.mkdir(parents=True)
    with zipfile.ZipFile(target, "w") as archive:
        archive.write(tsv, "social-chem-101/social-chem-101.v1.0.tsv")
        archive.writestr("social-chem-101/README.v1.0.md", "synthetic test archive\n")
    return root / "mirror"


def test_manifest(tmp_path: Path, rows: int) -> Path:
    """The production manifest with only the full file's row count changed."""
    text = (REPO / "data" / "manifest.toml").read_text()
    assert "rows = 355922\n" in text
    path = tmp_path / "manifest.toml"
    path.write_text(text.replace("rows = 355922\n", f"rows = {rows}\n"))
    return path


test_manifest.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """Records of the synthetic file, loaded through the production zip path."""
    tmp = tmp_path_factory.mktemp("socialchem")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MORALKIT_CACHE", str(tmp / "cache"))
        mp.setenv("MORALKIT_DATA_MIRROR", str(zipped_mirror(tmp)))
        records = load_records("socialchem", manifest=load_manifest(test_manifest(tmp, 18)))
    return records


def test_counts_after_cleaning(synthetic):
    counts = synthetic.provenance["counts"]
    assert counts["raw_rows"] == 18
    assert counts["cleaned_rows"] == 10
    assert counts["expanded_records"] == len(synthetic) == 18
    assert counts["by_pole"] == {"neutral": 2, "vice": 5, "virtue": 11}
    assert counts["prototypes"] == 3
    assert synthetic.provenance["ground_truth"] == "socialchem"
    assert set(synthetic.provenance["files"]) == {"social-chem-101"}
    assert len(synthetic.provenance["files"]["social-chem-101"]) == 64
    assert set(synthetic.table["source"]) == {"socialchem"}


def test_record_ids_and_explode(synthetic):
    t = synthetic.table
    assert t["source_id"].nunique() == 10
    assert sorted(t["source_id"].unique()) == [f"socialchem_{i:06d}" for i in range(10)]
    per_row = t.groupby("source_id").size().to_dict()
    assert per_row == {
        "socialchem_000000": 1,
        "socialchem_000001": 2,
        "socialchem_000002": 1,
        "socialchem_000003": 3,
        "socialchem_000004": 1,
        "socialchem_000005": 1,
        "socialchem_000006": 1,  # raw row 12
        "socialchem_000007": 2,  # raw row 13
        "socialchem_000008": 1,  # raw row 14
        "socialchem_000009": 5,  # raw row 15
    }
    assert t["record_id"].is_unique
    assert "socialchem_000001:loyalty" in set(t["record_id"])
    # the dropped rows never appear
    texts = set(t["text"])
    assert not any("flagged" in s or "workers" in s or "no " in s for s in texts)


def vector(records, record_id: str) -> dict[str, float]:
    row = records.table.set_index("record_id").loc[record_id]
    return {d: float(row[d]) for d in DIMENSIONS if row[d] != 0}


def test_vectors_by_hand(synthetic):
    # row 0: judgment 2, agree 4 -> virtue 1.0 on care
    assert vector(synthetic, "socialchem_000000:care") == {"care": 1.0}
    # row 1: judgment -2, agree 4 on care+loyalty -> 1.0 on harm AND betrayal, both records
    for f in ("care", "loyalty"):
        assert vector(synthetic, f"socialchem_000001:{f}") == {"harm": 1.0, "betrayal": 1.0}
    # row 2: judgment -1 (v=-0.5), agree 3 (w=0.75) -> 0.375 on cheating
    assert vector(synthetic, "socialchem_000002:fairness") == {"cheating": 0.375}
    # row 3: judgment 1, agree 2 -> 0.25 on care, authority, sanctity
    assert vector(synthetic, "socialchem_000003:sanctity") == {
        "care": 0.25,
        "authority": 0.25,
        "sanctity": 0.25,
    }
    # rows 4 (judgment 0) and 5 (agree 0): neutral, all-zero
    assert vector(synthetic, "socialchem_000004:loyalty") == {}
    assert vector(synthetic, "socialchem_000005:sanctity") == {}
    # raw row 12: judgment -2, agree 3 -> 0.75 on harm
    assert vector(synthetic, "socialchem_000006:care") == {"harm": 0.75}
    # raw row 13: judgment 1, agree 1 -> 0.125 on fairness and authority
    assert vector(synthetic, "socialchem_000007:authority") == {
        "fairness": 0.125,
        "authority": 0.125,
    }
    # raw row 14: judgment -1, agree 4 -> 0.5 on betrayal
    assert vector(synthetic, "socialchem_000008:loyalty") == {"betrayal": 0.5}
    # raw row 15: judgment 2, agree 2 -> 0.5 on all five virtue slots, vice slots 0
    five = vector(synthetic, "socialchem_000009:care")
    assert five == {d: 0.5 for d in DIMENSIONS[0::2]}


def test_labels_typicality_and_prototypes(synthetic):
    t = synthetic.table.set_index("record_id")
    expected = {
        "socialchem_000000:care": ("virtue", "care", 1.0, True, "virtue_typical"),
        "socialchem_000001:care": ("vice", "harm", 1.0, True, "vice_typical"),
        "socialchem_000001:loyalty": ("vice", "betrayal", 1.0, True, "vice_typical"),
        "socialchem_000002:fairness": ("vice", "cheating", 0.375, False, "vice"),
        "socialchem_000003:authority": ("virtue", "authority", 0.25, False, "virtue"),
        "socialchem_000004:loyalty": ("neutral", "neutral", 0.0, False, "neutral"),
        "socialchem_000007:fairness": ("virtue", "fairness", 0.125, False, "virtue"),
        "socialchem_000009:sanctity": ("virtue", "sanctity", 0.5, False, "virtue"),
    }
    for rid, values in expected.items():
        got = tuple(t.loc[rid, ["pole", "category", "typicality", "is_prototype", "stratum"]])
        assert got == values, rid
    polar = t[t["pole"] != "neutral"]
    assert set(polar["typicality"]) == {0.125, 0.25, 0.375, 0.5, 0.75, 1.0}
    # typicality is the record's value on its own category
    for _, row in polar.iterrows():
        assert row[row["category"]] == row["typicality"]
    assert (t["is_prototype"] == (t["typicality"] == 1.0)).all()


def test_split_is_by_row(synthetic):
    t = synthetic.table
    assert (t.groupby("source_id")["split"].nunique() == 1).all()
    rows = t.drop_duplicates("source_id")["split"].value_counts().to_dict()
    assert rows == {"train": 8, "val": 1, "test": 1}  # int(0.8*10), int(0.1*10), rest


def test_full_row_count_is_enforced(tmp_path, monkeypatch):
    """With the production manifest (355,922 rows) the 18-row archive is rejected."""
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(zipped_mirror(tmp_path)))
    with pytest.raises(DataChecksumError, match="parsed 18 data rows, manifest expects 355922"):
        load_records("socialchem")


def test_missing_column_names_column_and_file(tmp_path, monkeypatch):
    broken = tmp_path / "broken.tsv"
    table = pd.read_csv(FIXTURE, sep="\t", dtype=str, keep_default_na=False)
    table.drop(columns=["action-agree"]).to_csv(broken, sep="\t", index=False)
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(zipped_mirror(tmp_path, broken)))
    manifest = load_manifest(test_manifest(tmp_path, 18))
    with pytest.raises(ValueError, match=r"lacks required column\(s\) \['action-agree'\]") as err:
        load_records("socialchem", manifest=manifest)
    assert "social-chem-101.v1.0.tsv" in str(err.value)


def test_bad_values_are_reported(tmp_path, monkeypatch):
    table = pd.read_csv(FIXTURE, sep="\t", dtype=str, keep_default_na=False)
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    manifest = load_manifest()
    entry = manifest["social-chem-101-obligatory"]  # a pinned entry: no row check
    bad = table.copy()
    bad.loc[0, "action-moral-judgment"] = "3"
    path = tmp_path / "bad.tsv"
    bad.to_csv(path, sep="\t", index=False)
    from moralkit.data.social_chem import social_chem_items

    raw = read_social_chem_file(path, entry, "0" * 64)
    with pytest.raises(ValueError, match="'action-moral-judgment'.*outside the documented range"):
        social_chem_items([raw])
    with pytest.raises(ValueError, match="unknown foundation 'care-ham'"):
        parse_foundations(pd.Series(["care-ham|loyalty-betrayal"]), "file.tsv")
    mask = parse_foundations(pd.Series(["care-harm|sanctity-degradation", "loyalty-betrayal"]), "f")
    assert mask.tolist() == [[True, False, False, False, True], [False, False, True, False, False]]


@needs_mirror
def test_real_subset_rows(tmp_path, monkeypatch):
    """The real Social-Chem rows in ../shared/data through the mirror (good/okay only)."""
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(SHARED_DATA))
    records = load_records("socialchem-subset")
    counts = records.provenance["counts"]
    # 8,358 + 3,288 raw rows; m == 1 keeps 8,267 + 3,241; non-null fields keep 7,888 + 2,751.
    assert counts["raw_rows"] == 11_646
    assert counts["cleaned_rows"] == 10_639
    # foundations listed per cleaned row, summed (10,419 obligatory + 3,453 optional)
    assert counts["expanded_records"] == 13_872
    assert counts["by_pole"] == {"neutral": 3_461, "virtue": 10_411}  # no "bad" rows exist
    t = records.table
    assert set(t["source"]) == {"socialchem-subset"}
    assert set(t.loc[t["pole"] == "virtue", "typicality"]) <= {0.25, 0.375, 0.5, 0.75, 1.0}
    first = t.iloc[0]  # obligatory row 1: care-harm|loyalty-betrayal, judgment 1, agree 4
    assert first["text"] == "helping your friends when they're feeling down."
    assert first["record_id"] == "socialchem_000000:care"
    assert (first["care"], first["loyalty"], first["typicality"]) == (0.5, 0.5, 0.5)
    split_rows = t.drop_duplicates("source_id")["split"].value_counts()
    assert split_rows.to_dict() == {"train": 8_511, "val": 1_063, "test": 1_065}
    assert np.isclose(split_rows["train"] / 10_639, 0.8, atol=1e-3)
    # second call comes from the parquet cache and is identical
    again = load_records("socialchem-subset")
    pd.testing.assert_frame_equal(again.table, records.table)
    assert again.provenance == records.provenance
