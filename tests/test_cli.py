"""The moralkit command line: parameter parsing and rejection before any kernel starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from moralkit.book import parse_cli_value
from moralkit.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"


@pytest.fixture
def demo_notebooks(monkeypatch, tmp_path):
    monkeypatch.setenv("MORALKIT_NOTEBOOK_DIR", str(FIXTURES))
    monkeypatch.chdir(tmp_path)
    return FIXTURES


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-1", -1),
        ("0.25", 0.25),
        ("1e-3", 0.001),
        ("true", True),
        ("None", None),
        ("gemma-3-270m", "gemma-3-270m"),
        ("every:3", "every:3"),
        ("all", "all"),
        ("0,6,12", [0, 6, 12]),
        ("smollm2-135m,gemma-3-270m", ["smollm2-135m", "gemma-3-270m"]),
        ("[1, 2]", [1, 2]),
        ('["a", "b"]', ["a", "b"]),
    ],
)
def test_parse_cli_value(text, value):
    assert parse_cli_value(text) == value


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
