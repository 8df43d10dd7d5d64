"""Profile resolution and parameter validation (moralkit.profiles, moralkit.parameters)."""

from __future__ import annotations

import pytest

from moralkit import profiles
from moralkit.layers import LayerSpec
from moralkit.parameters import DTYPES, ParameterError, coerce, split_names
from moralkit.profiles import (
    COMMON_PARAMETERS,
    check_parameter_names,
    get_profile,
    load_profiles,
    resolve_parameters,
    select_models,
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
    assert p["layers"] == LayerSpec("list", indices=(0, -1))  # full-id chapter entry, parsed
    assert p["ground_truth"] == "moralstrength"  # inherited from base
    assert p["template"] is None  # common, never set


def test_chapter_values_do_not_leak_to_other_chapters(toy_profiles):
    p = resolve_parameters("04_structural", "base")
    assert "n_permutations" not in p
    assert p["layers"] == LayerSpec("all")
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
def test_split_names(value, expected):
    assert split_names(value, "model") == expected


def test_split_names_rejects_empty():
    with pytest.raises(ParameterError, match="model"):
        split_names(" , ", "model")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("seed", "x", r"seed='x': expected a whole number \(int\)"),
        ("seed", "1.5", r"seed='1.5': expected a whole number \(int\)"),
        ("sample_scale", "abc", r"sample_scale='abc': expected a number \(float\)"),
        ("layers", "1.5", r"layers='1.5': '1.5' is not a whole-number layer index"),
        ("dtype", "foo", r"dtype='foo': expected one of float32, bfloat16, float16"),
        ("pooling", "max", r"pooling='max': expected one of mean, last"),
        ("device", "gpu", r"device='gpu': expected cpu, cuda, cuda:N or mps"),
        ("template", "no slot", r"template='no slot': expected .*\{action\}"),
        ("ground_truth", "nowhere", r"ground_truth='nowhere'.*'nowhere'.*or the path"),
        ("sample_scale", "2", r"sample_scale='2': expected a fraction in \(0, 1\]"),
    ],
)
def test_bad_values_name_parameter_value_and_type(toy_profiles, name, text, expected):
    """Table B #7 (and #2's invalid values): refused with the parameter, value and type."""
    with pytest.raises(ParameterError, match=expected):
        resolve_parameters("02_categorical", "base", **{name: text})


def test_command_line_text_becomes_typed_values(toy_profiles):
    p = resolve_parameters(
        "02_categorical",
        "base",
        seed="7",
        sample_scale="0.5",
        layers="-1,-2",
        model="a,b",
        n_permutations="50",
        dtype="BFloat16",
    )
    assert p["seed"] == 7 and p["sample_scale"] == 0.5 and p["n_permutations"] == 50
    assert p["layers"].resolve(30) == (28, 29)
    assert p["model"] == ["a", "b"] and p["dtype"] == "bfloat16"


def test_chapter_extras_take_their_profile_values_type(toy_profiles):
    with pytest.raises(ParameterError, match=r"n_permutations='many'.*whole number"):
        resolve_parameters("02_categorical", "base", n_permutations="many")
    with pytest.raises(ParameterError, match=r"n_bootstrap=2\.5"):
        resolve_parameters("03_gradient", "base", n_bootstrap=2.5)


def test_layer_extras_are_layer_specs():
    assert coerce("probe_layers", "every:3") == LayerSpec("every", step=3)
    with pytest.raises(ParameterError, match="probe_layers"):
        coerce("probe_layers", "every:x")


def test_notebook_only_parameters_take_python_literals():
    assert coerce("window", "5") == 5
    assert coerce("names", "['a', 'b']") == ["a", "b"]
    assert coerce("label", "plain text") == "plain text"
    assert coerce("flag", "true") is True and coerce("anything", "None") is None


def test_declared_dtypes_are_the_loaders():
    from moralkit.models.loading import DTYPES as LOADER_DTYPES

    assert set(DTYPES) == set(LOADER_DTYPES)


def test_profile_with_a_bad_default_value_is_rejected(tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("bad:\n  defaults:\n    dtype: float64\n")
    monkeypatch.setenv("MORALKIT_PROFILES", str(path))
    with pytest.raises(ValueError, match=r"profile 'bad' defaults: parameter dtype='float64'"):
        get_profile("bad")


def test_select_models():
    models = ["a", "b", "c"]
    assert select_models(None, models) == ["a"]
    assert select_models("all", models) == models
    assert select_models("None", models) == []
    assert select_models("b,c", models) == ["b", "c"]
