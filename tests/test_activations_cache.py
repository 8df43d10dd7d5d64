"""The on-disk activation cache: keys, hits without loading, layer subsets, safety.

(paper §2.1; book: Methods › Activations, methods/activations.md.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from moralkit.activations import cache as cache_module
from moralkit.activations import cached_activations, extract_activations, store
from moralkit.models import load_model
from moralkit.models import loading as model_loading

TEXTS = ["helping a friend", "lying", "helping a friend", "stealing bread", "lying"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def entries(cache_dir) -> list[str]:
    """Entry folders (not the writers' lock file, not temp folders)."""
    root = cache_dir / "activations"
    return sorted(n for n in os.listdir(root) if not n.startswith(".")) if root.exists() else []


def temporaries(cache_dir) -> list[str]:
    root = cache_dir / "activations"
    return sorted(n for n in os.listdir(root) if n.endswith((".tmp", ".del")))


def entry_of(acts) -> Path:
    return Path(acts.meta["cache_entry"])


def count_extractions(monkeypatch) -> list[tuple[int, ...]]:
    """Spy on extraction: the layers of each call."""
    calls: list[tuple[int, ...]] = []
    real = cache_module.extract_activations

    def spy(loaded, texts, layers, *args, **kwargs):
        calls.append(tuple(layers))
        return real(loaded, texts, layers, *args, **kwargs)

    monkeypatch.setattr(cache_module, "extract_activations", spy)
    return calls


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
    assert entries(cache) == [entry_of(first).name]
    assert entry_of(first).name.startswith(first.meta["cache_key"][:32])


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
    stored = json.loads((entry_of(acts) / "meta.json").read_text())
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
        {"max_tokens": 64},
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

    monkeypatch.setattr(store.np, "save", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        cached_activations("tiny-llama", TEXTS, progress=False)
    assert entries(cache) == []  # the temp folder is gone as well
    monkeypatch.setattr(store.np, "save", real_save)
    fresh = cached_activations("tiny-llama", TEXTS, progress=False)
    assert fresh.meta["cache_hit"] is False


def test_corrupt_entry_is_detected_and_recomputed(cache):
    first = cached_activations("tiny-llama", TEXTS, progress=False)
    npy = entry_of(first) / "mean.npy"
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
    npy = entry_of(first) / "last.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.warns(RuntimeWarning, match="sha256"):
        again = cached_activations("tiny-llama", TEXTS, progress=False)
    np.testing.assert_allclose(again.arrays["last"], first.arrays["last"], atol=1e-6)


def test_explicit_cache_dir_and_layer_errors(tmp_path, cache):
    acts = cached_activations("tiny-qwen2", TEXTS, cache_dir=tmp_path / "elsewhere", progress=False)
    assert entry_of(acts).parent == tmp_path / "elsewhere" / "activations"
    assert entry_of(acts).is_dir()
    assert entries(cache) == []
    with pytest.raises(ValueError, match=r"layers: .*\[5\] out of range for a 2-layer model"):
        cached_activations("tiny-qwen2", TEXTS, layers=[5], progress=False)


# --------------------------------------------------------------------------- layer subsets (A7)
def test_a_subset_of_cached_layers_is_served_without_extraction(cache, monkeypatch):
    full = cached_activations("tiny-llama", TEXTS, layers=None, progress=False)
    calls = count_extractions(monkeypatch)
    forbid_loading(monkeypatch)
    for layers, expected in (([0, 2], (0, 2)), ([2], (2,)), ((2, 0), (0, 2)), ([1], (1,))):
        part = cached_activations("tiny-llama", TEXTS, layers=layers, progress=False)
        assert part.meta["cache_hit"] is True and part.layers == expected
        for layer in expected:
            np.testing.assert_array_equal(part.get(layer), full.get(layer))
    assert calls == []
    assert entries(cache) == [entry_of(full).name]


def test_missing_layers_are_extracted_alone_and_merged(cache, monkeypatch):
    calls = count_extractions(monkeypatch)
    first = cached_activations("tiny-llama", TEXTS, layers=[1], progress=False)
    both = cached_activations("tiny-llama", TEXTS, layers=[0, 1], progress=False)
    assert calls == [(1,), (0,)]  # only layer 0 was new
    assert both.meta["cache_hit"] is False and both.layers == (0, 1)
    np.testing.assert_array_equal(both.get(1), first.get(1))
    assert entries(cache) == [entry_of(both).name]  # the layer-1 entry was superseded
    direct = extract_activations(load_model("tiny-llama"), list(dict.fromkeys(TEXTS)), [0, 1])
    np.testing.assert_allclose(both.get(0)[[0, 1, 3]], direct.get(0), atol=1e-6)
    again = cached_activations("tiny-llama", TEXTS, layers=[0], progress=False)
    assert again.meta["cache_hit"] is True and calls == [(1,), (0,)]


# --------------------------------------------------------------------------- bad input (B)
def test_a_single_string_or_none_is_refused_before_any_work(cache, monkeypatch):
    forbid_loading(monkeypatch)
    with pytest.raises(TypeError, match="texts must be a list of texts, not a single str"):
        cached_activations("tiny-llama", "one text", progress=False)
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        cached_activations("tiny-llama", ["lying", None], progress=False)
    assert entries(cache) == []


def test_an_unparsed_layer_spec_is_refused_before_any_work(cache, monkeypatch):
    """The cache takes resolved indices only: a spec is resolved once, before (Chapter.layers)."""
    from moralkit.layers import LayerSpec

    forbid_loading(monkeypatch)
    calls = count_extractions(monkeypatch)
    for unparsed in ("0,1", "all", LayerSpec.parse("0,-1"), 1):
        with pytest.raises(TypeError, match="resolved layer indices"):
            cached_activations("tiny-llama", TEXTS, layers=unparsed, progress=False)
    with pytest.raises(ValueError, match="negative"):
        cached_activations("tiny-llama", TEXTS, layers=[-1], progress=False)
    assert calls == [] and entries(cache) == []


def test_truncation_count_is_in_the_meta_of_misses_and_hits(cache):
    texts = ["short", "word " * 10_000]
    with pytest.warns(UserWarning, match="truncated"):
        first = cached_activations("tiny-qwen2", texts, layers=[0], progress=False)
    assert first.meta["n_truncated"] == 1
    with pytest.warns(UserWarning, match="truncated"):
        second = cached_activations("tiny-qwen2", texts, layers=[0], progress=False)
    assert second.meta["cache_hit"] and second.meta["n_truncated"] == 1


@pytest.mark.parametrize("drop", ["files", "layers", "cache_key"])
def test_meta_missing_a_key_is_corrupt_and_recomputed(cache, drop):
    first = cached_activations("tiny-llama", TEXTS, progress=False)
    meta_path = entry_of(first) / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta[drop]
    meta_path.write_text(json.dumps(meta))  # valid JSON, one key short
    with pytest.warns(RuntimeWarning, match=f"corrupt.*lacks.*{drop}"):
        again = cached_activations("tiny-llama", TEXTS, progress=False)
    assert again.meta["cache_hit"] is False
    np.testing.assert_allclose(again.arrays["mean"], first.arrays["mean"], atol=1e-6)
    assert cached_activations("tiny-llama", TEXTS, progress=False).meta["cache_hit"] is True


def test_file_entry_without_its_keys_is_corrupt(cache):
    first = cached_activations("tiny-llama", TEXTS, progress=False)
    meta_path = entry_of(first) / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["files"]["mean"]["sha256"]
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="corrupt.*'mean' lacks.*sha256"):
        again = cached_activations("tiny-llama", TEXTS, progress=False)
    assert again.meta["cache_hit"] is False


def test_unwritable_cache_fails_before_loading_or_extracting(tmp_path, monkeypatch):
    """A cache path under a regular file cannot be created, even by root (chmod would not stop
    root); the probe writes a real file rather than asking os.access."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MORALKIT_CACHE", str(blocker / "cache"))
    calls = count_extractions(monkeypatch)
    forbid_loading(monkeypatch)
    with pytest.raises(PermissionError, match="MORALKIT_CACHE.*nothing was extracted"):
        cached_activations("tiny-llama", TEXTS, progress=False)
    assert calls == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder_fails_before_extracting(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    (root / "activations").mkdir(parents=True)
    (root / "activations").chmod(0o555)
    monkeypatch.setenv("MORALKIT_CACHE", str(root))
    calls = count_extractions(monkeypatch)
    try:
        with pytest.raises(PermissionError, match="MORALKIT_CACHE"):
            cached_activations("tiny-llama", TEXTS, progress=False)
    finally:
        (root / "activations").chmod(0o755)
    assert calls == []


def test_a_read_only_cache_still_serves_hits(cache, monkeypatch):
    first = cached_activations("tiny-llama", TEXTS, progress=False)
    monkeypatch.setattr(cache_module, "ensure_writable", _refuse)
    forbid_loading(monkeypatch)
    again = cached_activations("tiny-llama", TEXTS, progress=False)
    assert again.meta["cache_hit"]
    np.testing.assert_array_equal(again.arrays["mean"], first.arrays["mean"])


def _refuse(*args, **kwargs):
    raise AssertionError("a hit must not need a writable cache")


def test_stale_temporaries_are_cleaned_but_not_live_ones(cache):
    from moralkit.io import clean_stale_temporaries, writers_lock

    root = cache / "activations"
    (root / ".abc.x1.tmp").mkdir(parents=True)
    (root / ".abc.x1.tmp" / "mean.npy").write_bytes(b"half")
    (root / ".abc.x2.del").mkdir()
    with writers_lock(root):  # a writer is busy: nothing may be removed
        assert clean_stale_temporaries(root) == 0
    assert temporaries(cache) == [".abc.x1.tmp", ".abc.x2.del"]
    cached_activations("tiny-qwen2", TEXTS, layers=[0], progress=False)
    assert temporaries(cache) == []
