"""The on-disk activation cache (paper-methods §2.1): keys, hits without loading, safety."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import moralkit.activations as activations
from moralkit.activations import cached_activations, extract_activations
from moralkit.models import load_model
from moralkit.models import loading as model_loading

TEXTS = ["helping a friend", "lying", "helping a friend", "stealing bread", "lying"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(cache_dir) -> list[str]:
    root = cache_dir / "activations"
    return sorted(os.listdir(root)) if root.exists() else []


def forbid_loading(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the model must not be loaded on a cache hit")

    monkeypatch.setattr(model_loading, "load_model", fail)


def test_second_call_hits_without_loading_the_model(cache, monkeypatch):
    first = cached_activations("tiny-llama", TEXTS, progress=False)
    assert first.meta["cache_hit"] is False
    assert first.n_texts == len(TEXTS)
    np.testing.assert_array_equal(first.get(0)[0], first.get(0)[2])  # duplicates share rows
    forbid_loading(monkeypatch)
    second = cached_activations("tiny-llama", TEXTS, progress=False)
    assert second.meta["cache_hit"] is True
    assert second.meta["cache_key"] == first.meta["cache_key"]
    for pooling in ("mean", "last"):
        np.testing.assert_array_equal(second.arrays[pooling], first.arrays[pooling])
    assert entries(cache) == [first.meta["cache_key"][:32]]


def test_cache_matches_direct_extraction_and_records_provenance(cache):
    acts = cached_activations("tiny-gemma3", TEXTS, layers=[0, 2], progress=False)
    direct = extract_activations(load_model("tiny-gemma3"), TEXTS, layers=[0, 2], progress=False)
    np.testing.assert_allclose(acts.arrays["mean"], direct.arrays["mean"], atol=1e-6)
    meta = acts.meta
    for key in (
        "model_id",
        "revision",
        "weights_hash",
        "dtype",
        "template",
        "system_prompt",
        "wall_s",
        "tokens_per_s",
        "cache_key",
        "cache_hit",
        "n_model_layers",
    ):
        assert key in meta, key
    assert meta["model_id"] == "tiny-gemma3" and meta["n_unique"] == 3
    stored = json.loads((cache / "activations" / meta["cache_key"][:32] / "meta.json").read_text())
    assert stored["files"]["mean"]["shape"] == [2, 3, 32]


def test_a_loaded_model_and_its_name_share_the_entry(cache, monkeypatch):
    loaded = load_model("tiny-qwen2")
    by_object = cached_activations(loaded, TEXTS, progress=False)
    forbid_loading(monkeypatch)
    by_name = cached_activations("tiny-qwen2", TEXTS, progress=False)
    assert by_name.meta["cache_hit"] and by_name.meta["cache_key"] == by_object.meta["cache_key"]


@pytest.mark.parametrize(
    "change",
    [
        {"template": "{action} is"},
        {"layers": [0]},
        {"dtype": "bfloat16"},
        {"poolings": ("mean",)},
        {"system_prompt": "Be good."},
        {"random_init": True},
        {"random_init": True, "seed": 3},
    ],
)
def test_key_changes_with_what_changes_the_numbers(cache, change):
    base = cached_activations("tiny-llama", TEXTS, progress=False)
    other = cached_activations("tiny-llama", TEXTS, progress=False, **change)
    assert other.meta["cache_key"] != base.meta["cache_key"]
    assert other.meta["cache_hit"] is False


def test_random_init_seed_is_part_of_the_key(cache):
    a = cached_activations("tiny-llama", TEXTS, random_init=True, seed=1, progress=False)
    b = cached_activations("tiny-llama", TEXTS, random_init=True, seed=2, progress=False)
    c = cached_activations("tiny-llama", TEXTS, random_init=True, seed=1, progress=False)
    assert a.meta["cache_key"] != b.meta["cache_key"] and c.meta["cache_hit"]
    assert not np.allclose(a.get(0), b.get(0))


def test_interrupted_write_leaves_no_entry(cache, monkeypatch):
    real_save = np.save
    calls = []

    def crash_on_second(path, array):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption mid-write")
        real_save(path, array)

    monkeypatch.setattr(activations.np, "save", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        cached_activations("tiny-llama", TEXTS, progress=False)
    assert entries(cache) == []  # the temp folder is gone as well
    monkeypatch.setattr(activations.np, "save", real_save)
    fresh = cached_activations("tiny-llama", TEXTS, progress=False)
    assert fresh.meta["cache_hit"] is False


def test_corrupt_entry_is_detected_and_recomputed(cache):
    first = cached_activations("tiny-llama", TEXTS, progress=False)
    npy = cache / "activations" / first.meta["cache_key"][:32] / "mean.npy"
    data = npy.read_bytes()
    npy.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(RuntimeWarning, match="corrupt"):
        again = cached_activations("tiny-llama", TEXTS, progress=False)
    assert again.meta["cache_hit"] is False
    np.testing.assert_allclose(again.arrays["mean"], first.arrays["mean"], atol=1e-6)
    third = cached_activations("tiny-llama", TEXTS, progress=False)
    assert third.meta["cache_hit"] is True


def test_flipped_bytes_fail_the_checksum(cache):
    first = cached_activations("tiny-llama", TEXTS, progress=False)
    npy = cache / "activations" / first.meta["cache_key"][:32] / "last.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="sha256"):
        again = cached_activations("tiny-llama", TEXTS, progress=False)
    np.testing.assert_allclose(again.arrays["last"], first.arrays["last"], atol=1e-6)


def test_explicit_cache_dir_and_layer_errors(tmp_path, cache):
    acts = cached_activations("tiny-qwen2", TEXTS, cache_dir=tmp_path / "elsewhere", progress=False)
    assert (tmp_path / "elsewhere" / "activations" / acts.meta["cache_key"][:32]).is_dir()
    assert entries(cache) == []
    with pytest.raises(ValueError, match="layer 5 is out of range.*2 decoder layers"):
        cached_activations("tiny-qwen2", TEXTS, layers=[5], progress=False)
