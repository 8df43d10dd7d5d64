"""The one layer grammar (moralkit.layers.LayerSpec)."""

from __future__ import annotations

import numpy as np
import pytest

from moralkit.layers import LayerSpec, LayerSpecError, check_layer_indices, layer_indices


@pytest.mark.parametrize(
    ("value", "depth", "expected"),
    [
        (None, 4, (0, 1, 2, 3)),
        ("all", 3, (0, 1, 2)),
        (" ALL ", 2, (0, 1)),
        ("every:3", 8, (0, 3, 6, 7)),
        ("every:1", 3, (0, 1, 2)),
        ("0,6,12", 30, (0, 6, 12)),
        ("-1,-2", 30, (28, 29)),
        ("-1, 0", 5, (0, 4)),
        (-1, 18, (17,)),
        (np.int64(2), 5, (2,)),
        ([3, 1, 3], 5, (1, 3)),
        ((0, -1), 4, (0, 3)),
        (["2", "-1"], 4, (2, 3)),
        ([2.0], 4, (2,)),
        ("[0,1]", 4, (0, 1)),
    ],
)
def test_parse_and_resolve(value, depth, expected):
    assert LayerSpec.parse(value).resolve(depth) == expected


def test_parse_is_idempotent_and_round_trips_through_text():
    for value in ["all", "every:4", "0,-1,5"]:
        spec = LayerSpec.parse(value)
        assert LayerSpec.parse(spec) is spec
        assert LayerSpec.parse(spec.to_jsonable()) == spec


@pytest.mark.parametrize(
    "value", ["1.5", [1.5], "x", "every:0", "every:x", "", ",", True, {"a": 1}]
)
def test_bad_specs_name_the_parameter(value):
    with pytest.raises(LayerSpecError, match="probe_layers"):
        LayerSpec.parse(value, name="probe_layers")


def test_out_of_range_names_the_depth():
    spec = LayerSpec.parse("0,30")
    with pytest.raises(LayerSpecError, match="30-layer model"):
        spec.resolve(30)
    with pytest.raises(LayerSpecError, match="out of range"):
        LayerSpec.parse(-5).resolve(4)


def test_every_always_includes_the_last_layer():
    assert LayerSpec.parse("every:5").resolve(18) == (0, 5, 10, 15, 17)


def test_narrow_keeps_shared_layers_or_falls_back():
    layers = LayerSpec.parse("0,6,12")
    assert layers.narrow(LayerSpec.parse("every:3"), 30) == (0, 6, 12)
    assert layers.narrow(LayerSpec.parse("6,7"), 30) == (6,)
    assert layers.narrow(LayerSpec.parse("1"), 30) == (0, 6, 12)
    assert layers.narrow(None, 30) == (0, 6, 12)


def test_layer_spec_error_is_a_value_error():
    assert issubclass(LayerSpecError, ValueError)


def test_resolved_indices_are_checked_never_parsed():
    assert check_layer_indices([3, 1, 3], 5) == (1, 3)  # sorted and unique
    assert check_layer_indices(np.array([0, 4]), 5) == (0, 4)
    assert check_layer_indices(None, 3) == (0, 1, 2)  # None: every layer
    assert layer_indices(None) is None
    for text_or_spec in ("0,1", "all", LayerSpec.parse("0,-1"), 2):
        with pytest.raises(TypeError, match="resolved layer indices"):
            check_layer_indices(text_or_spec, 5)
    with pytest.raises(TypeError, match="not layer indices"):
        check_layer_indices([0, "1"], 5)
    with pytest.raises(LayerSpecError, match="negative"):
        layer_indices([-1])
    with pytest.raises(LayerSpecError, match=r"\[5\] out of range for a 5-layer model"):
        check_layer_indices([0, 5], 5)
    with pytest.raises(LayerSpecError, match="no layer"):
        check_layer_indices([], 5)


def test_narrow_names_the_parameters_in_errors():
    with pytest.raises(LayerSpecError, match="sae_layers"):
        LayerSpec.parse("all").narrow(LayerSpec.parse("40"), 30, "layers", "sae_layers")
