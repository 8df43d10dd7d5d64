"""The moralkit command line: parameters, refusals before any kernel starts, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from moralkit.cli import _join_param_values, main
from moralkit.notebooks import OUTPUT_MARKER

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
PROBE = FIXTURES / "probe"


@pytest.fixture
def demo_notebooks(monkeypatch, tmp_path):
    monkeypatch.setenv("MORALKIT_NOTEBOOK_DIR", str(FIXTURES))
    monkeypatch.chdir(tmp_path)
    return FIXTURES


@pytest.mark.parametrize(
    ("argv", "joined"),
    [
        (["run", "02", "-p", "layers", "-1,-2"], ["run", "02", "--param=layers=-1,-2"]),
        (["run", "02", "--param", "seed", "-3"], ["run", "02", "--param=seed=-3"]),
        (["run", "02", "-p", "layers=-1"], ["run", "02", "--param=layers=-1"]),
        (["run", "02", "-p", "t", "a = b"], ["run", "02", "--param=t=a = b"]),
        (["run", "02", "-p"], ["run", "02", "-p"]),  # left for argparse to report
    ],
)
def test_param_values_are_taken_verbatim(argv, joined):
    assert _join_param_values(argv) == joined


def test_negative_layers_reach_the_parameter_check(demo_notebooks, tmp_path, capsys):
    """`-p layers -1,-2` is parsed (argparse used to refuse it); -99 then fails on depth."""
    code = main(["run", "01", "-p", "layers", "-1,-2", "-p", "seed", "x", "-o", "run"])
    err = capsys.readouterr().err
    assert code == 2 and "seed='x'" in err  # got past argparse to the parameter check
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("seed", "x", "parameter seed='x': expected a whole number (int)"),
        ("seed", "1.5", "parameter seed='1.5': expected a whole number (int)"),
        ("sample_scale", "abc", "parameter sample_scale='abc': expected a number (float)"),
        ("layers", "1.5", "parameter layers='1.5': '1.5' is not a whole-number layer index"),
        ("dtype", "foo", "parameter dtype='foo': expected one of float32, bfloat16, float16"),
    ],
)
def test_run_rejects_bad_values_before_any_kernel(
    demo_notebooks, tmp_path, capsys, name, value, expected
):
    """Table B #2 and #7: a bad value exits non-zero, naming parameter, value and type."""
    code = main(["run", "01", "-p", name, value, "-o", str(tmp_path / "run")])
    assert code == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything ran


def test_run_refuses_an_output_folder_it_did_not_write(demo_notebooks, tmp_path, capsys):
    """Table B #1: `-o DIR` with the user's files in it: refused, nothing deleted."""
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "results.csv").write_text("a,b\n1,2\n")
    assert main(["run", "01", "-o", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "already holds files that moralkit did not write" in err and str(mine) in err
    assert (mine / "data" / "results.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in mine.iterdir()) == ["data"]


def test_run_rejects_unknown_parameter_with_valid_list(demo_notebooks, tmp_path, capsys):
    code = main(["run", "01", "-p", "n_pointz", "3", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "n_pointz" in err and "valid:" in err
    assert "n_points" in err and "layers" in err  # parameters-cell name and common name
    assert not (tmp_path / "run").exists()  # rejected before anything ran


def test_run_rejects_unknown_chapter_listing_chapters(demo_notebooks, capsys):
    assert main(["run", "99"]) == 2
    err = capsys.readouterr().err
    assert "unknown chapter '99'" in err and "01_demo_chapter" in err


def test_run_rejects_unknown_profile(demo_notebooks, capsys):
    assert main(["run", "01", "--profile", "huge"]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err


def test_run_rejects_repeated_parameter(demo_notebooks, capsys):
    assert main(["run", "01", "-p", "seed", "1", "-p", "seed", "2"]) == 2
    assert "given twice" in capsys.readouterr().err


def test_chapters_and_profiles(demo_notebooks, capsys):
    assert main(["chapters", "-v"]) == 0
    out = capsys.readouterr().out
    assert "01_demo_chapter: 01 · Demo chapter" in out and "n_points" in out
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert "quick:" in out and "tiny:" in out and "paper:" in out


def test_help_works_as_a_command():
    result = subprocess.run(
        [sys.executable, "-m", "moralkit.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("book", "run", "chapters", "profiles"):
        assert command in result.stdout


@pytest.mark.slow  # one kernel that imports torch: about 10 s
def test_run_passes_every_parameter_and_absolute_paths(monkeypatch, tmp_path, capsys):
    """Table B #2 and #6, end to end in a kernel: parameters the notebook's cell does not
    name reach Chapter.start, a cell name's injected value is the one read, and relative
    MORALKIT_DATA_MIRROR / MORALKIT_CACHE are absolute in the kernel, which runs in another
    folder."""
    monkeypatch.setenv("MORALKIT_NOTEBOOK_DIR", str(PROBE))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", "mirror")
    monkeypatch.setenv("MORALKIT_CACHE", "./cache")
    out = tmp_path / "runs" / "probe"
    argv = ["run", "01", "--profile", "tiny", "-p", "layers", "-1,-2", "-p", "dtype", "bfloat16"]
    argv += ["-p", "template", "Q: {action}", "-o", str(out)]
    code = main(argv)
    assert code == 0, capsys.readouterr().err
    seen = json.loads((out / "seen.json").read_text())
    assert seen["cwd"] == str(out.resolve())
    assert seen["env"] == {
        "MORALKIT_DATA_MIRROR": str(tmp_path.resolve() / "mirror"),
        "MORALKIT_CACHE": str(tmp_path.resolve() / "cache"),
    }
    assert seen["params"]["layers"] == "-1,-2"
    assert seen["params"]["dtype"] == "bfloat16"
    assert seen["params"]["template"] == "Q: {action}"
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["params"]["dtype"] == "bfloat16"
    assert (out / OUTPUT_MARKER).is_file()
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "ok" and record["parameters"]["layers"] == "-1,-2"


def test_book_with_a_failing_chapter_exits_non_zero(monkeypatch, tmp_path, capsys):
    """Table B #14: `moralkit book` stops at a failing chapter, exit status 1, no site."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    text = (PROBE / "01_probe.md").read_text()
    start = text.index("import json")
    broken = text[:start] + 'raise RuntimeError("planted failure")\n```\n'
    (notebooks / "01_broken.md").write_text(broken)
    root = tmp_path / "site"
    (root / "book" / "_vendor").mkdir(parents=True)
    os.symlink(REPO / "book" / "_vendor" / "mathjax", root / "book" / "_vendor" / "mathjax")
    monkeypatch.setenv("MORALKIT_NOTEBOOK_DIR", str(notebooks))
    code = main(["book", "--profile", "tiny", "--root", str(root)])
    captured = capsys.readouterr()
    assert code == 1
    assert "planted failure" in captured.out  # the failing cell's error is shown
    assert "chapter(s) failed: 01_broken; the book was not built" in captured.err
    assert not (root / "_build" / "html").exists()
    assert (root / "_build" / "failed" / "01_broken.ipynb").exists()


def test_relative_path_variables_are_made_absolute_at_start(demo_notebooks, tmp_path, monkeypatch):
    """Table B #6 (fast half): `moralkit run` resolves relative paths before anything runs."""
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", "../shared/data")
    monkeypatch.setenv("MORALKIT_CACHE", "~/cache-here")
    monkeypatch.delenv("MORALKIT_PROFILES", raising=False)
    main(["run", "01", "-p", "seed", "x"])  # refused, but after start-up
    assert os.environ["MORALKIT_DATA_MIRROR"] == str((tmp_path / "shared/data").resolve())
    assert os.environ["MORALKIT_CACHE"] == str(Path("~/cache-here").expanduser().resolve())


def test_examples_writes_both_files_and_keeps_a_readers_copy(tmp_path, capsys):
    from moralkit.example_files import example_text

    edited = tmp_path / "my_benchmark.csv"
    edited.write_text("id,context,acceptable,unacceptable\nmine,a,b,c\n")
    assert main(["examples", str(tmp_path)]) == 0
    assert (tmp_path / "my_ground_truth.csv").read_text() == example_text("my_ground_truth.csv")
    assert edited.read_text().endswith("mine,a,b,c\n")  # never overwritten
    assert len(example_text("my_ground_truth.csv").splitlines()) == 46  # header + 45 actions
    assert str(edited) in capsys.readouterr().out
