"""Hugging Face hub loads, tested offline: a hub cache layout built in a temporary HF_HOME.

The cache is laid out as ``huggingface_hub`` writes it (``models--org--name/refs/main``,
``snapshots/<commit>/`` symlinks into ``blobs/<sha256>``), the hub is switched off
(``HF_HUB_OFFLINE=1``) and models are loaded by hub id or registry name through
:func:`moralkit.models.load_model`, exactly as a user with a filled cache would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from moralkit.activations import cached_activations, extract_activations
from moralkit.models import get_model_spec, load_model
from moralkit.models import hub as moralkit_hub
from moralkit.models.tiny import build_tiny_model, build_tiny_tokenizer_for

REPO_ID = "moralkit-test/tiny-llama"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
TEXTS = ["helping a friend move house", "lying to a friend", "stealing bread"]


def add_snapshot(hub_cache: Path, repo_id: str, commit: str, files: Path, main: bool) -> Path:
    """Store ``files`` as snapshot ``commit`` of ``repo_id`` (blobs named by sha256)."""
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for path in sorted(files.iterdir()):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copy(path, blob)
        (snapshot / path.name).symlink_to(os.path.relpath(blob, snapshot))
    if main:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return snapshot


def save_checkpoint(model, folder: Path) -> Path:
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    build_tiny_tokenizer_for("tiny-llama").save_pretrained(folder)
    return folder


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty hub cache in a temporary HF_HOME, with the hub switched off."""
    import huggingface_hub.constants as constants

    home = tmp_path / "hf"
    hub_cache = home / "hub"
    hub_cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads both at import; the process may have imported it already
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "moralkit-cache"))
    moralkit_hub.hub_answers.cache_clear()
    return hub_cache


@pytest.fixture
def two_revisions(offline_hub, tmp_path):
    """``REPO_ID`` with two commits of different weights; refs/main points at B."""
    a = build_tiny_model("tiny-llama", seed=1)
    b = build_tiny_model("tiny-llama", seed=2)
    add_snapshot(offline_hub, REPO_ID, COMMIT_A, save_checkpoint(a, tmp_path / "a"), main=False)
    add_snapshot(offline_hub, REPO_ID, COMMIT_B, save_checkpoint(b, tmp_path / "b"), main=True)
    return a, b


def first_weight(model) -> torch.Tensor:
    return next(model.parameters()).detach().float()


def test_hub_id_loads_offline_at_the_pinned_revision(two_revisions):
    a, b = two_revisions
    main = load_model(REPO_ID)
    pinned = load_model(REPO_ID, revision=COMMIT_A)
    assert main.revision == COMMIT_B and main.identity.revision == COMMIT_B
    assert pinned.revision == COMMIT_A and pinned.identity.revision == COMMIT_A
    assert torch.equal(first_weight(main.model), first_weight(b))
    assert torch.equal(first_weight(pinned.model), first_weight(a))
    assert main.weights_hash != pinned.weights_hash
    # the weights hash of a hub snapshot is built from the blobs' sha256 names
    assert len(main.weights_hash) == 64


def test_revision_lands_in_the_activation_cache_key_and_meta(two_revisions):
    main = cached_activations(REPO_ID, TEXTS, layers=None, progress=False)
    pinned = cached_activations(
        load_model(REPO_ID, revision=COMMIT_A), TEXTS, layers=None, progress=False
    )
    assert main.meta["revision"] == COMMIT_B and pinned.meta["revision"] == COMMIT_A
    assert main.meta["cache_key"] != pinned.meta["cache_key"]
    again = cached_activations(REPO_ID, TEXTS, layers=None, progress=False)
    assert again.meta["cache_hit"] and again.meta["cache_key"] == main.meta["cache_key"]


def test_revision_lands_in_chapter_provenance(two_revisions, tmp_path, monkeypatch):
    from moralkit.chapter import Chapter
    from moralkit.layers import LayerSpec
    from moralkit.sae.data import TextBatch

    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(tmp_path / "out"))
    ch = Chapter.start("02_categorical_indifference", profile="tiny", model=REPO_ID)
    ch.activations(REPO_ID, TextBatch(TEXTS), layers=LayerSpec.parse("all"))
    (entry,) = ch.provenance()["models"]
    assert entry["revision"] == COMMIT_B
    assert entry["weights_hash"] == load_model(REPO_ID).weights_hash
    assert entry["cache_key"]


def test_dtype_and_device_reach_the_model(two_revisions):
    half = load_model(REPO_ID, dtype="bfloat16")
    assert half.dtype == "bfloat16"
    assert {p.dtype for p in half.model.parameters()} == {torch.bfloat16}
    meta = load_model(REPO_ID, device="meta")  # a device no default would choose
    assert meta.device == "meta"
    assert {p.device.type for p in meta.model.parameters()} == {"meta"}


def test_unknown_hub_id_fails_fast_offline(offline_hub):
    from moralkit.models import ModelNotAvailableError

    with pytest.raises(ModelNotAvailableError, match="HF_HUB_OFFLINE"):
        load_model("moralkit-test/not-in-the-cache")


# ------------------------------------------------------------------ the paper's families
def _tiny_common() -> dict:
    return dict(
        vocab_size=260,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def qwen3_config():
    from transformers import Qwen3Config

    return Qwen3Config(**_tiny_common())


def llama31_config():
    from transformers import LlamaConfig

    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 128,
    }
    return LlamaConfig(**_tiny_common(), rope_parameters=rope)


def llama4_config():
    from transformers import Llama4Config

    text = {
        **_tiny_common(),
        "intermediate_size_mlp": 64,
        "num_local_experts": 4,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "no_rope_layers": [1, 0],
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 4,
        "image_size": 28,
        "patch_size": 14,
        "vision_output_dim": 32,
        "projector_input_dim": 32,
        "projector_output_dim": 32,
    }
    return Llama4Config(text_config=text, vision_config=vision)


def gpt_oss_config():
    from transformers import GptOssConfig

    return GptOssConfig(
        **_tiny_common(), num_local_experts=4, num_experts_per_tok=2, sliding_window=16
    )


FAMILIES = {
    "Qwen3": ("qwen3-8b", qwen3_config),
    "Llama-3.1": ("llama-3.1-8b-instruct", llama31_config),
    "Llama-4": ("llama-4-scout-17b-16e-instruct", llama4_config),
    "gpt-oss": ("gpt-oss-20b", gpt_oss_config),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_registry_loader_per_paper_family(family, offline_hub, tmp_path):
    """The registry name resolves to its hub id and loads a tiny random checkpoint of that
    architecture from the offline cache; extraction reads every layer."""
    from transformers import AutoModelForCausalLM

    name, make_config = FAMILIES[family]
    spec = get_model_spec(name)
    assert spec.family == family
    try:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(make_config())
    except ImportError as err:  # an optional kernel package of that family, nothing else
        pytest.skip(f"transformers cannot build a tiny {family} without {err.name}: {err}")
    add_snapshot(offline_hub, spec.hf_id, COMMIT_A, save_checkpoint(model, tmp_path / "ckpt"), True)
    loaded = load_model(name)
    assert loaded.spec is spec and loaded.revision == COMMIT_A
    assert loaded.n_layers == 2 and loaded.hidden_size == 32
    # pinned to the checkpoint it was saved from: the same next token and layer-0 states
    ids = loaded.tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        mine = loaded.model(input_ids=ids, output_hidden_states=True)
        reference = model.eval()(input_ids=ids, output_hidden_states=True)
    assert int(mine.logits[0, -1].argmax()) == int(reference.logits[0, -1].argmax())
    assert torch.allclose(mine.hidden_states[1], reference.hidden_states[1], atol=1e-5)
    acts = extract_activations(loaded, TEXTS, None, ("mean", "last"), progress=False)
    assert acts.layers == (0, 1)
    for layer in acts.layers:
        values = acts.get(layer, "mean")
        assert values.shape == (len(TEXTS), 32) and torch.isfinite(torch.as_tensor(values)).all()
