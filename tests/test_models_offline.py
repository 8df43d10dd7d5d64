"""The offline GGUF models load and extract (slow: the first run converts each GGUF, ~1-2 min).

These use the real ``$MORALKIT_CACHE`` (default ``~/.cache/moralkit``) so the conversion is
done once per machine, as for users.
"""

from __future__ import annotations

import numpy as np
import pytest

from moralkit.activations import cached_activations, extract_activations
from moralkit.models import load_model, model_identity

pytestmark = pytest.mark.slow

TEXTS = ["helping a friend", "lying to a friend", "abandon"]


@pytest.mark.parametrize(
    ("name", "depth", "width", "bos"),
    [("smollm2-135m", 30, 576, False), ("gemma-3-270m", 18, 640, True)],
)
def test_offline_model_loads_and_extracts(name, depth, width, bos):
    loaded = load_model(name)
    assert (loaded.n_layers, loaded.hidden_size) == (depth, width)
    assert loaded.weights_hash == model_identity(name).weights_hash  # known without loading
    assert loaded.revision.startswith("gguf:")
    ids = loaded.tokenizer("lying is morally")["input_ids"]
    assert (ids[0] == loaded.tokenizer.bos_token_id) == bos
    acts = extract_activations(loaded, TEXTS, layers=[0, depth // 2, depth - 1], progress=False)
    for pooling in ("mean", "last"):
        values = acts.arrays[pooling]
        assert values.shape == (3, 3, width)
        assert np.isfinite(values).all()
    # different texts, different vectors; the middle layer is not degenerate
    assert not np.allclose(acts.get(depth // 2)[0], acts.get(depth // 2)[1])


@pytest.mark.parametrize("name", ["smollm2-135m", "gemma-3-270m"])
def test_offline_cached_activations_roundtrip(name, tmp_path):
    first = cached_activations(name, TEXTS + TEXTS[:1], layers=[1], cache_dir=tmp_path)
    second = cached_activations(name, TEXTS + TEXTS[:1], layers=[1], cache_dir=tmp_path)
    assert (first.meta["cache_hit"], second.meta["cache_hit"]) == (False, True)
    np.testing.assert_array_equal(first.get(1), second.get(1))
    np.testing.assert_array_equal(second.get(1)[0], second.get(1)[3])
    # layer 0 is extracted alone and merged into the entry; a request for layer 0 is then a hit
    merged = cached_activations(name, TEXTS, layers=[0, 1], cache_dir=tmp_path, progress=False)
    assert merged.meta["cache_hit"] is False and merged.meta["cache_entry_layers"] == [0, 1]
    np.testing.assert_array_equal(merged.get(1), second.get(1)[:3])
    subset = cached_activations(name, TEXTS, layers=[0], cache_dir=tmp_path, progress=False)
    assert subset.meta["cache_hit"] is True
    np.testing.assert_array_equal(subset.get(0), merged.get(0))


def test_offline_random_init_twin_differs():
    trained = extract_activations(load_model("smollm2-135m"), TEXTS, layers=[5], progress=False)
    twin = load_model("smollm2-135m", random_init=True, seed=0)
    random = extract_activations(twin, TEXTS, layers=[5], progress=False)
    assert not np.allclose(trained.get(5), random.get(5), atol=1e-2)


def test_smollm2_system_prompt_uses_its_chat_template():
    loaded = load_model("smollm2-135m")
    acts = extract_activations(
        loaded, TEXTS[:2], layers=[3], system_prompt="You are a moral assistant.", progress=False
    )
    assert acts.meta["system_prompt"] == "You are a moral assistant."
    assert np.isfinite(acts.get(3)).all()
    with pytest.raises(ValueError, match="chat template"):
        extract_activations(load_model("gemma-3-270m"), TEXTS, system_prompt="x", progress=False)
