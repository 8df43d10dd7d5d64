"""Profile resolution, parameter validation and layer specs (moralkit.profiles)."""

from __future__ import annotations

import pytest

from moralkit import profiles
from moralkit.profiles import (
    COMMON_PARAMETERS,
    check_parameter_names,
    get_profile,
    load_profiles,
    parse_layers,
    parse_models,
    resolve_layers,
    resolve_parameters,
)

PROFILE_YAML = """
base:
  description: a base profile
  defaults:
    ground_truth: moralstrength
    model: [m1, m2]
    layers: all
    pooling: mean
    poolings: [mean]
    sample_scale: 1.0
    seed: 42
  chapters:
    "02":
      n_permutations: 200
    03_gradient:
      n_bootstrap: 50
child:
  extends: base
  defaults:
    model: m1
    sample_scale: 0.1
  chapters:
    "02":
      n_permutations: 5
    02_categorical:
      layers: "0,-1"
"""


@pytest.fixture
def toy_profiles(tmp_path, monkeypatch):
    path = tmp_path / "profiles.yaml"
    path.write_text(PROFILE_YAML)
    monkeypatch.setenv("MORALKIT_PROFILES", str(path))
    return path


def test_shipped_profiles_are_valid():
    loaded = load_profiles(profiles.PROFILES_PATH)
    assert {"quick", "tiny", "paper"} <= set(loaded)
    assert loaded["quick"].defaults["model"] == ["smollm2-135m", "gemma-3-270m"]
    assert loaded["quick"].defaults["ground_truth"] == "moralstrength"
    assert len(loaded["paper"].defaults["model"]) == 23
    assert loaded["paper"].defaults["dtype"] == "bfloat16"
    assert loaded["tiny"].defaults["model"] == ["smollm2-135m"]
    # tiny extends quick: it inherits what it does not set
    assert loaded["tiny"].defaults["template"] == "{action} is morally"


def test_defaults_then_chapter_values_then_arguments(toy_profiles):
    p = resolve_parameters("02_categorical", "child", seed=7, model=None)
    assert p["profile"] == "child"
    assert p["model"] == ["m1"]  # child's default, a string, parsed into a list
    assert p["sample_scale"] == 0.1
    assert p["seed"] == 7  # a non-None argument wins
    assert p["n_permutations"] == 5  # child's "02" beats base's "02"
    assert p["layers"] == [0, -1]  # full-id chapter entry
    assert p["ground_truth"] == "moralstrength"  # inherited from base
    assert p["template"] is None  # common, never set


def test_chapter_values_do_not_leak_to_other_chapters(toy_profiles):
    p = resolve_parameters("04_structural", "base")
    assert "n_permutations" not in p
    assert p["layers"] == "all"
    assert resolve_parameters("03_gradient", "base")["n_bootstrap"] == 50


def test_unknown_parameter_lists_valid_names(toy_profiles):
    with pytest.raises(ValueError) as err:
        resolve_parameters("02_categorical", "base", n_permutation=3)
    message = str(err.value)
    assert "n_permutation" in message and "n_permutations" in message
    for name in COMMON_PARAMETERS:
        assert name in message


def test_notebook_parameter_names_are_valid(toy_profiles):
    check_parameter_names("05_probe", ["max_epochs"], notebook_names=["max_epochs"])
    with pytest.raises(ValueError, match="max_epochs"):
        check_parameter_names("05_probe", ["max_epochs"])


def test_unknown_profile_is_named(toy_profiles):
    with pytest.raises(ValueError, match="unknown profile 'nope'.*base"):
        get_profile("nope")


def test_profile_with_unknown_default_is_rejected(tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("bad:\n  defaults:\n    modle: x\n")
    monkeypatch.setenv("MORALKIT_PROFILES", str(path))
    with pytest.raises(ValueError, match="modle"):
        get_profile("bad")


def test_pooling_is_added_to_extracted_poolings(toy_profiles):
    p = resolve_parameters("02_categorical", "base", pooling="last")
    assert p["poolings"] == ["mean", "last"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a", ["a"]), ("a, b", ["a", "b"]), (["a", "b"], ["a", "b"]), ("a,,b,", ["a", "b"])],
)
def test_parse_models(value, expected):
    assert parse_models(value) == expected


def test_parse_models_rejects_empty():
    with pytest.raises(ValueError):
        parse_models(" , ")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("all", "all"),
        ("ALL", "all"),
        ("every:3", "every:3"),
        ("0,6,12", [0, 6, 12]),
        ("0, -1", [0, -1]),
        (5, [5]),
        ([3, 1], [3, 1]),
    ],
)
def test_parse_layers(spec, expected):
    assert parse_layers(spec) == expected


@pytest.mark.parametrize("spec", ["every:0", "every:x", "first", "1,a", "", True])
def test_parse_layers_rejects(spec):
    with pytest.raises(ValueError, match="layers spec"):
        parse_layers(spec)


def test_resolve_layers():
    assert resolve_layers("all", 4) == [0, 1, 2, 3]
    assert resolve_layers(None, 3) == [0, 1, 2]
    assert resolve_layers("every:4", 10) == [0, 4, 8, 9]
    assert resolve_layers("every:3", 7) == [0, 3, 6]
    assert resolve_layers("0,-1,15", 30) == [0, 15, 29]
    assert resolve_layers([2, 2, -10], 10) == [0, 2]


def test_resolve_layers_out_of_range_names_the_depth():
    with pytest.raises(ValueError, match=r"\[18\] out of range for a 18-layer model"):
        resolve_layers("0,18", 18)
    with pytest.raises(ValueError, match="out of range"):
        resolve_layers([-19], 18)


def test_select_models():
    from moralkit.profiles import select_models

    models = ["a", "b", "c"]
    assert select_models(None, models) == ["a"]
    assert select_models("all", models) == models
    assert select_models("None", models) == []
    assert select_models("b,c", models) == ["b", "c"]
