"""Hugging Face hub loads, tested offline: a hub cache layout built in a temporary HF_HOME.

The cache is laid out as ``huggingface_hub`` writes it (``models--org--name/refs/main``,
``snapshots/<commit>/`` symlinks into ``blobs/<sha256>``: moralkit.rehearsal.hub_cache), the hub
is switched off (``HF_HUB_OFFLINE=1``, the ``offline_hub`` fixture of conftest.py) and models
are loaded by hub id or registry name through
:func:`moralkit.models.load_model`, exactly as a user with a filled cache would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from moralkit.activations import cached_activations, extract_activations
from moralkit.models import get_model_spec, load_model
from moralkit.models.tiny import build_tiny_model, build_tiny_tokenizer_for
from moralkit.rehearsal.hub_cache import add_snapshot

REPO_ID = "moralkit-test/tiny-llama"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
TEXTS = ["helping a friend move house", "lying to a friend", "stealing bread"]


def save_checkpoint(model, folder: Path) -> Path:
    folder.mkdir(parents=True)
    model.save_pretrained(folder)
    build_tiny_tokenizer_for("tiny-llama").save_pretrained(folder)
    return folder


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
FAMILIES = {
    "Qwen3": "qwen3-8b",
    "Qwen3-MoE": "qwen3-235b-a22b",
    "Llama-3.1": "llama-3.1-8b-instruct",
    "Llama-4": "llama-4-scout-17b-16e-instruct",
    "gpt-oss": "gpt-oss-20b",
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_registry_loader_per_paper_family(family, offline_hub):
    """The registry name resolves to its hub id and loads the family's tiny twin (same model
    class and quirks: moralkit.models.twins) from the offline cache; extraction reads every
    layer, and the depth every layer spec resolves against is the checkpoint's."""
    from moralkit.models import model_depth
    from moralkit.models.twins import TWIN_WIDTH, twin_depth, twin_model
    from moralkit.rehearsal.hub_cache import write_twin_cache

    name = FAMILIES[family]
    spec = get_model_spec(name)
    assert spec.family == family.removesuffix("-MoE")
    (commit,) = write_twin_cache(offline_hub, [name]).values()
    loaded = load_model(name)
    depth = twin_depth(spec)
    assert loaded.spec is spec and loaded.revision == commit
    assert loaded.n_layers == depth == model_depth(name) and loaded.hidden_size == TWIN_WIDTH
    # pinned to the twin it was saved from: the same next token and layer-0 states
    reference = twin_model(name)
    for param in reference.parameters():  # parameters only: Llama-4's vision RoPE is complex
        param.data = param.data.to(next(loaded.model.parameters()).dtype)
    ids = loaded.tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        mine = loaded.model(input_ids=ids, output_hidden_states=True)
        ref = reference(input_ids=ids, output_hidden_states=True)
    assert int(mine.logits[0, -1].argmax()) == int(ref.logits[0, -1].argmax())
    assert torch.allclose(mine.hidden_states[1], ref.hidden_states[1], atol=1e-5)
    acts = extract_activations(loaded, TEXTS, None, ("mean", "last"), progress=False)
    assert acts.layers == tuple(range(depth))
    for layer in acts.layers:
        values = acts.get(layer, "mean")
        assert values.shape == (len(TEXTS), TWIN_WIDTH)
        assert torch.isfinite(torch.as_tensor(values)).all()
