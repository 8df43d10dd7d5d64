"""A user's own ground truth (``-p ground_truth PATH``): the record schema, its four file
formats, errors that name file, row and column, and the parameter that accepts a path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moralkit.data import diagnostic_records, load_records
from moralkit.data.user_ground_truth import load_user_records, stratum_of
from moralkit.data.user_tables import UserFileError
from moralkit.foundations import DIMENSIONS
from moralkit.io import sha256_of
from moralkit.parameters import ParameterError, coerce

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "my_ground_truth.csv"

ROWS = [
    {"text": "helping a friend", "foundation": "care", "pole": "virtue", "typicality": "1.0",
     "note": "a"},
    {"text": "kicking a dog", "foundation": "care-harm", "pole": "vice", "typicality": "0.6",
     "note": "b"},
    {"text": "paying taxes", "foundation": "fairness", "pole": "neutral", "typicality": "",
     "note": "c"},
]  # fmt: skip


def write(path: Path, rows: list[dict], fmt: str | None = None) -> Path:
    fmt = fmt or path.suffix.lstrip(".")
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "parquet"])
def test_every_format_gives_the_same_records(tmp_path, fmt):
    records = load_records(str(write(tmp_path / f"gt.{fmt}", ROWS)))
    table = records.table
    assert table["text"].tolist() == ["helping a friend", "kicking a dog", "paying taxes"]
    assert table["foundation"].tolist() == ["care", "care", "fairness"]
    assert table["category"].tolist() == ["care", "harm", "neutral"]
    assert table["typicality"].tolist() == [1.0, 0.5, 0.0]  # 0.6 rounded down onto a stratum
    assert table["typicality_given"].tolist() == [1.0, 0.6, 0.0]
    assert table["note"].tolist() == ["a", "b", "c"]  # extra columns are kept
    assert records.vectors[1].tolist() == [0, 0.6, 0, 0, 0, 0, 0, 0, 0, 0]
    assert records.has_typicality
    path = tmp_path / f"gt.{fmt}"
    assert records.provenance["files"] == {str(path): sha256_of(path)}
    assert records.provenance["ground_truth"] == str(path)


def test_the_example_file_gives_a_diagnostic_subset():
    subset = diagnostic_records(str(EXAMPLE), sample_scale=0.15, seed=0)
    assert len(subset) == 45  # small strata are taken whole
    assert set(subset.table["category"]) == {*DIMENSIONS, "neutral"}
    assert subset.table.groupby("category")["is_prototype"].sum().drop("neutral").min() > 0
    assert "annotator" in subset.table


def test_vector_form_makes_a_record_per_non_zero_entry(tmp_path):
    zero = dict.fromkeys(DIMENSIONS, 0)
    rows = [
        {"text": "a", **zero, "care": 0.9, "cheating": 0.3},
        {"text": "b", **zero, "degradation": 1},
        {"text": "c", **zero, "foundation": "loyalty"},
    ]
    rows[0]["foundation"] = rows[1]["foundation"] = ""
    records = load_user_records(write(tmp_path / "v.csv", rows))
    table = records.table
    assert table["record_id"].tolist() == ["a:care", "a:fairness", "b:sanctity", "c:loyalty"]
    assert table["pole"].tolist() == ["virtue", "vice", "vice", "neutral"]
    assert table["typicality_given"].tolist() == [0.9, 0.3, 1.0, 0.0]
    assert records.vectors[0, DIMENSIONS.index("cheating")] == 0.3  # the whole vector kept
    assert records.has_typicality and records.provenance["schema"] == "vector"


def test_no_typicality_is_reported_as_for_the_mfd(tmp_path):
    rows = [{k: v for k, v in r.items() if k != "typicality"} for r in ROWS]
    records = load_user_records(write(tmp_path / "gt.csv", rows))
    assert not records.has_typicality
    assert records.provenance["prototype_rule"]["rule"] == "all"  # every polar record
    assert records.table["is_prototype"].tolist() == [True, True, False]


def test_prototype_split_and_id_columns_are_read(tmp_path):
    rows = [
        {**ROWS[0], "prototype": "yes", "split": "val", "id": "x"},
        {**ROWS[1], "prototype": "false", "split": "test", "id": "y"},
        {**ROWS[2], "prototype": "0", "split": "test", "id": "z"},
    ]
    records = load_user_records(write(tmp_path / "gt.csv", rows))
    assert records.table["is_prototype"].tolist() == [True, False, False]
    assert records.table["split"].tolist() == ["val", "test", "test"]
    assert records.table["source_id"].tolist() == ["x", "y", "z"]
    assert records.provenance["prototype_rule"]["rule"] == "file"


def test_a_record_column_name_in_the_file_is_kept_under_user_(tmp_path):
    rows = [{**r, "category": "mine"} for r in ROWS]
    table = load_user_records(write(tmp_path / "gt.csv", rows)).table
    assert table["category"].tolist() == ["care", "harm", "neutral"]
    assert table["user_category"].tolist() == ["mine"] * 3


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"pole": "good"}, r"row 2 \(line 3\), column 'pole': 'good': not one of virtue"),
        ({"typicality": "N/A"}, r"row 2 \(line 3\), column 'typicality': 'N/A': a value is req"),
        ({"typicality": "NaN"}, r"row 2 \(line 3\), column 'typicality': 'NaN': a value is req"),
        ({"typicality": "1.5"}, r"column 'typicality': '1.5': must lie in \(0, 1\]"),
        ({"typicality": "high"}, r"column 'typicality': 'high': not a number"),
        ({"foundation": "purity"}, r"column 'foundation': 'purity': not one of care, fairness"),
        ({"text": ""}, r"row 2 \(line 3\), column 'text': '': a text is required"),
        ({"text": "helping a friend", "foundation": "care"}, r"the same text and foundation as"),
    ],
)
def test_bad_cells_are_named_by_file_row_and_column(tmp_path, change, expected):
    path = write(tmp_path / "gt.csv", [ROWS[0], {**ROWS[1], **change}, ROWS[2]])
    with pytest.raises(UserFileError, match=expected) as err:
        load_user_records(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty"),
        (b"text,foundation,pole\n", "no data rows"),
        (b"text,foundation,pole\ncaf\xe9,care,virtue\n", "not valid UTF-8"),
        (b"text,pole\nx,virtue\n", "needs 'foundation' and 'pole' columns"),
        (b"words,foundation,pole\nx,care,virtue\n", "lacks the required column 'text'"),
    ],
)
def test_bad_files_are_named(tmp_path, content, expected):
    path = tmp_path / "gt.csv"
    path.write_bytes(content)
    with pytest.raises(UserFileError, match=expected) as err:
        load_user_records(path)
    assert str(path) in str(err.value)


def test_jsonl_errors_name_the_line(tmp_path):
    path = tmp_path / "gt.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n{not json\n")
    with pytest.raises(UserFileError, match=r"gt.jsonl: line 3 is not JSON"):
        load_user_records(path)
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps({**ROWS[1], "pole": None}) + "\n")
    with pytest.raises(UserFileError, match=r"record 2 \(line 3\), column 'pole'"):
        load_user_records(path)


def test_vector_form_errors(tmp_path):
    zero = dict.fromkeys(DIMENSIONS, 0)
    cases = [
        ([{"text": "a", **zero, "care": 0.5, "harm": 0.5}], "both poles of care are non-zero"),
        ([{"text": "a", **zero, "harm": -1}], "column 'harm': '-1': must lie in"),
        ([{"text": "a", **zero}], "all-zero vector is a neutral record and needs a 'foundation'"),
        ([{"text": "a", **zero, "pole": "virtue"}], "not both"),
    ]
    for rows, expected in cases:
        with pytest.raises(UserFileError, match=expected):
            load_user_records(write(tmp_path / "v.csv", rows))


def test_strata_round_down():
    assert stratum_of(np.array([0.01, 0.125, 0.3, 0.74, 0.75, 0.99, 1.0])).tolist() == [
        0.125, 0.125, 0.25, 0.5, 0.75, 0.75, 1.0,
    ]  # fmt: skip


def test_the_parameter_takes_a_path_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    assert coerce("ground_truth", "examples/my_ground_truth.csv") == str(EXAMPLE)
    assert coerce("ground_truth", "moralstrength") == "moralstrength"
    assert coerce("ground_truth", f"mfd,{EXAMPLE}") == ["mfd", str(EXAMPLE)]
    with pytest.raises(ParameterError, match="or the path of a CSV, TSV, JSONL or Parquet"):
        coerce("ground_truth", "moralstrenght")
    with pytest.raises(ParameterError, match=r"gt/missing.csv does not exist"):
        coerce("ground_truth", str(tmp_path / "gt" / "missing.csv"))
    with pytest.raises(ParameterError, match=r"unknown table format '.xlsx'"):
        coerce("ground_truth", "data/my.xlsx")


def test_typicality_analyses_do_not_apply_to_a_file_without_it(tmp_path):
    """As for the MFD dictionaries: the gradient diagnostic refuses, replication skips it."""
    from moralkit.diagnostics.gradient import gradient_indifference
    from moralkit.replication import NEEDS_TYPICALITY

    rows = [{k: v for k, v in r.items() if k != "typicality"} for r in ROWS]
    records = load_user_records(write(tmp_path / "gt.csv", rows))
    with pytest.raises(ValueError, match="no graded typicality.*'typicality' column"):
        gradient_indifference(None, records)
    assert "gradient" in NEEDS_TYPICALITY and not records.has_typicality


@pytest.mark.slow  # chapter 02 on the tiny profile in a kernel: about 40 s
def test_chapter_02_runs_on_the_tiny_profile_from_a_users_file(tmp_path, monkeypatch, capsys):
    """Issue 21: `moralkit run 02 -p ground_truth PATH` end to end, the file's checksum in the
    provenance and the claims, the path given relative to where the command starts."""
    from moralkit.cli import main

    monkeypatch.delenv("MORALKIT_NOTEBOOK_DIR", raising=False)
    monkeypatch.chdir(REPO / "examples")
    out = tmp_path / "run"
    argv = ["run", "02", "--profile", "tiny", "-p", "ground_truth", EXAMPLE.name, "-o", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    provenance = json.loads((out / "provenance.json").read_text())
    (data,) = provenance["data"]
    assert data["ground_truth"] == str(EXAMPLE) and data["n_records"] == 45
    assert data["checksums"] == {str(EXAMPLE): sha256_of(EXAMPLE)}
    assert provenance["params"]["ground_truth"] == str(EXAMPLE)
    claims = json.loads((out / "claims.json").read_text())
    assert {c["ground_truth"] for c in claims.values()} == {str(EXAMPLE)}
    table = pd.read_csv(out / "tables" / "categorical_virtue_vice.csv")
    assert set(table["foundation"]) == {"care", "fairness", "loyalty", "authority", "sanctity"}
    assert table["cosine"].notna().all()
