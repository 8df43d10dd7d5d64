"""A user's own benchmark files (``-p benchmarks PATH[,PATH...]``, chapters 08 and 10), their
bad cells and files (issue 21, bad input #2 and #3), and the chapter parameters refused before
a kernel starts (#4)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from moralkit.cli import main
from moralkit.data.benchmarks import benchmark_files
from moralkit.evaluation.behaviour import behaviour_benchmarks
from moralkit.evaluation.schema import LABELLED, PAIRED, load_benchmark, user_benchmarks
from moralkit.io import sha256_of
from moralkit.parameters import CHOICES

PAIRS = pd.DataFrame(
    {
        "context": ["A friend lends you a book.", "You find a wallet.", "Your team loses."],
        "acceptable": ["You return it.", "You hand it in.", "You thank the players."],
        "unacceptable": ["You sell it.", "You keep the cash.", "You blame the new player."],
    }
)


@pytest.mark.parametrize(
    ("fmt", "cell", "where"),
    [
        ("csv", "NaN", "row 2 (line 3)"),
        ("csv", "N/A", "row 2 (line 3)"),
        ("csv", "", "row 2 (line 3)"),
        ("jsonl", None, "record 2 (line 2)"),
        ("parquet", None, "row 2"),
    ],
)
def test_missing_cells_of_a_paired_benchmark_are_named(tmp_path, fmt, cell, where):
    """Issue 21, bad input #2: NaN / N/A / empty cells are errors, not the text "NaN"."""
    table = PAIRS.astype(object).copy()
    table.loc[1, "unacceptable"] = cell
    path = tmp_path / f"pairs.{fmt}"
    if fmt == "csv":
        table.to_csv(path, index=False, na_rep="")
    elif fmt == "jsonl":
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_parquet(path)
    with pytest.raises(ValueError) as err:
        load_benchmark(path)
    assert f"file {path}: {where}, column 'unacceptable'" in str(err.value)
    assert "a value is required" in str(err.value)


def test_a_missing_value_marker_in_the_context_or_a_label_is_named(tmp_path):
    path = tmp_path / "pairs.csv"
    PAIRS.assign(context=["x", "NaN", ""]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 2 \(line 3\), column 'context': 'NaN'"):
        load_benchmark(path)
    PAIRS.assign(context=["x", "", ""]).to_csv(path, index=False)
    assert load_benchmark(path).table["context"].tolist() == ["x", "", ""]  # empty: no context
    labelled = tmp_path / "labels.tsv"
    labelled.write_text("text\tlabel\nI helped.\t0\nI stole.\tN/A\n")
    with pytest.raises(ValueError, match=r"row 2 \(line 3\), column 'label': 'N/A': labels"):
        load_benchmark(labelled)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "is empty (0 bytes)"),
        (b"\n\n", "holds only blank lines"),
        (b"context,acceptable,unacceptable\n", "has no data rows"),
        (b"acceptable,unacceptable\ncaf\xe9,tea\n", "is not valid UTF-8: byte 0xe9 at offset"),
    ],
)
def test_empty_or_non_utf8_benchmark_files_are_named(tmp_path, content, expected):
    """Issue 21, bad input #3: the file and the problem, not pandas' EmptyDataError."""
    path = tmp_path / "mine.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(expected)) as err:
        load_benchmark(path)
    assert str(path) in str(err.value)


def test_every_format_and_the_benchmarks_parameter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    PAIRS.to_csv("pairs.csv", index=False)
    pd.DataFrame({"text": ["I helped.", "I stole."], "label": [0, 1]}).to_parquet("labels.parquet")
    assert benchmark_files("pairs.csv,labels.parquet") == [
        str(tmp_path / "pairs.csv"),
        str(tmp_path / "labels.parquet"),
    ]
    assert benchmark_files(None) == benchmark_files([]) == []
    first, second = user_benchmarks(["pairs.csv", "labels.parquet"])
    assert (first.name, first.schema, len(first)) == ("pairs", PAIRED, 3)
    assert (second.name, second.schema, second.table["label"].tolist()) == (
        "labels",
        LABELLED,
        [0, 1],
    )
    with pytest.raises(ValueError, match="nope.csv does not exist"):
        benchmark_files("nope.csv")
    with pytest.raises(ValueError, match="is not a benchmark file"):
        benchmark_files("pairs.xlsx")
    PAIRS.to_csv("ethics.csv", index=False)
    with pytest.raises(ValueError, match=r"the name\(s\) \['ethics'\] are taken"):
        user_benchmarks(["ethics.csv"])


def test_the_chapters_benchmarks_come_after_the_built_in_sets(tmp_path, offline_mirror):
    PAIRS.to_csv(tmp_path / "mine.csv", index=False)
    sets = behaviour_benchmarks(4, 4, 0, extra=[str(tmp_path / "mine.csv")])
    assert [b.name for b in sets] == ["moral-stories", "ethics", "ethics-hard", "mine"]
    assert len(sets[-1]) == 3  # a user's file is measured whole


def test_check_prints_each_benchmark_file_with_its_checksum(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    PAIRS.to_csv("mine.csv", index=False)
    assert main(["run", "08", "-p", "benchmarks", "mine.csv", "--check"]) == 0
    out = capsys.readouterr().out
    assert f"path: {tmp_path / 'mine.csv'}" in out and sha256_of(tmp_path / "mine.csv") in out
    assert "3 rows (paired schema), named 'mine'" in out
    (tmp_path / "bad.csv").write_text("acceptable,unacceptable\nyes,N/A\n")
    assert main(["run", "08", "-p", "benchmarks", "bad.csv", "-o", "out"]) == 2
    assert f"file {tmp_path / 'bad.csv'}: row 1 (line 2), column 'unacceptable'" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ row 4
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("protocol", "foo", "parameter protocol='foo': expected one of fixed, paper"),
        ("n_flames_prompts", "-5", "parameter n_flames_prompts='-5': expected a whole number >= 0"),
        ("sae_preset", "nope", "sae_preset='nope': expected one of paper-run, paper-code, quick"),
        ("steer_layers", "999", "parameter steer_layers='999' does not fit model smollm2-135m: "
         "layer(s) [999] out of range for a 30-layer model (valid: 0..29"),
        ("judge", "environment", "parameter judge='environment': $MORALKIT_JUDGE_MODEL is not set"),
    ],
)  # fmt: skip
def test_chapter_08_refuses_before_the_kernel(tmp_path, monkeypatch, capsys, name, value, expected):
    """Issue 21, bad input #4: exit 2, naming the parameter, the value and what is allowed, and
    nothing started (no output folder)."""
    for variable in ("MORALKIT_JUDGE_MODEL", "MORALKIT_JUDGE_BASE_URL", "MORALKIT_JUDGE_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "08", "-p", name, value, "-o", "out"]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_judge_environment_passes_with_its_variables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MORALKIT_JUDGE_MODEL", "some-model")
    monkeypatch.delenv("MORALKIT_JUDGE_BASE_URL", raising=False)
    assert main(["run", "08", "-p", "judge", "environment", "--check"]) == 2  # no endpoint
    monkeypatch.setenv("MORALKIT_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["run", "08", "-p", "judge", "environment", "--check"]) == 0
    monkeypatch.setenv("MORALKIT_JUDGE_MODEL", "openai/gpt-4.1-mini")  # a provider id: no URL
    monkeypatch.delenv("MORALKIT_JUDGE_BASE_URL")
    assert main(["run", "08", "-p", "judge", "environment", "--check"]) == 0


def test_the_allowed_values_are_the_codes_own():
    from moralkit.evaluation.flames import JUDGE_KINDS, PROTOCOLS
    from moralkit.pruning.strongreject import JUDGES
    from moralkit.sae.config import OBJECTIVES, PRESETS
    from moralkit.steering.generation import DECODING_SETTINGS

    assert set(CHOICES["protocol"]) == set(PROTOCOLS)
    assert set(CHOICES["judge"]) == set(JUDGE_KINDS) | set(JUDGES)
    assert set(CHOICES["sae_preset"]) == set(PRESETS)
    assert set(CHOICES["decoding_setting"]) == set(DECODING_SETTINGS)
    assert set(CHOICES["objective"]) == set(OBJECTIVES)


# ------------------------------------------------------------------ tiny profile
@pytest.mark.slow  # chapter 10 on the tiny profile (tiny-llama): about a minute
def test_chapter_10_measures_a_users_benchmark_under_every_mask(tmp_path, monkeypatch, capsys):
    """The tiny model's byte tokenizer cannot answer Yes/No (the tiny profile sets n_ethics 0),
    so the user's benchmark here is paired."""
    monkeypatch.delenv("MORALKIT_NOTEBOOK_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    PAIRS.to_csv("mine.csv", index=False)
    argv = ["run", "10", "--profile", "tiny", "-p", "benchmarks", "mine.csv", "-o", "out"]
    assert main(argv) == 0, capsys.readouterr().err
    utility = pd.read_csv(tmp_path / "out" / "tables" / "harmful_weights_utility.csv")
    mine = utility[utility["measure"] == "mine"]
    assert set(mine["condition"]) == set(utility["condition"])  # every mask, and unpruned
    assert (mine["n"] == 3).all() and mine["value"].between(0, 1).all()
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["input_files"] == {str(tmp_path / "mine.csv"): sha256_of(tmp_path / "mine.csv")}
    assert Path(record["parameters"]["benchmarks"][0]) == tmp_path / "mine.csv"
