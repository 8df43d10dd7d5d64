"""The dress rehearsal of the paper profile (moralkit.rehearsal): twins, synthetic Social-Chem,
local judge, and (slow) every chapter through the Snakemake workflow on them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from browser import third_party_requests
from workflow_runs import SNAKEMAKE

from moralkit import workflow as wf
from moralkit.book import list_chapters
from moralkit.data.fetch import fetch_with_checksum
from moralkit.data.manifest import OVERLAY_ENV, load_manifest
from moralkit.data.social_chem import SOCIAL_CHEM_COLUMNS, read_social_chem_file
from moralkit.models import PAPER_MODELS, get_model_spec, load_model
from moralkit.models.twins import twin_commit, twin_config, twin_depth, write_twin
from moralkit.rehearsal.hub_cache import write_twin_cache
from moralkit.rehearsal.serve import N_ROWS, SOCIAL_CHEM
from moralkit.rehearsal.social_chem import MEMBER, synthetic_zip

REPO = Path(__file__).resolve().parents[1]


def test_every_paper_model_has_a_twin_of_its_architecture():
    """The twin keeps the model class the hub checkpoint declares, its MoE routing and the
    base / instruct / guard chat templates of the registry."""
    classes = {
        "Qwen3": {"Qwen3ForCausalLM", "Qwen3MoeForCausalLM"},
        "Llama-3.1": {"LlamaForCausalLM"},
        "Llama-4": {"Llama4ForConditionalGeneration"},
        "gpt-oss": {"GptOssForCausalLM"},
    }
    for name in PAPER_MODELS:
        spec, config = get_model_spec(name), twin_config(name)
        assert config.architectures[0] in classes[spec.family], name
        text = config.get_text_config()
        moe = getattr(text, "num_local_experts", None) or getattr(text, "num_experts", None)
        assert bool(moe) == (spec.architecture == "MoE"), name
        assert str(config.dtype).endswith("bfloat16"), name


def test_twins_are_deterministic(tmp_path):
    a, b = write_twin("gpt-oss-20b", tmp_path / "a"), write_twin("gpt-oss-20b", tmp_path / "b")
    for file in ("model.safetensors", "config.json", "tokenizer.json"):
        assert (a / file).read_bytes() == (b / file).read_bytes(), file
    assert twin_commit("gpt-oss-20b") == twin_commit("gpt-oss-20b") != twin_commit("qwen3-8b")


def test_twins_keep_the_tokenizer_quirks(offline_hub):
    write_twin_cache(offline_hub, ["llama-3.1-8b-instruct", "qwen3-8b", "llama-guard-3-8b"])
    from transformers import AutoTokenizer

    llama = AutoTokenizer.from_pretrained("meta-llama/Llama-3.1-8B-Instruct")
    assert llama.pad_token is None  # as Meta ships it; load_model pads with EOS
    assert load_model("llama-3.1-8b-instruct").tokenizer.pad_token == llama.eos_token
    assert llama(" Yes")["input_ids"][1:] != llama(" No")["input_ids"][1:]  # one token each
    qwen = AutoTokenizer.from_pretrained("Qwen/Qwen3-8B")
    chat = [{"role": "user", "content": "hi"}]
    thinking_off = qwen.apply_chat_template(
        chat, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert thinking_off.endswith("<think>\n\n</think>\n\n")
    guard = AutoTokenizer.from_pretrained("meta-llama/Llama-Guard-3-8B")
    with pytest.raises(Exception, match="alternate"):
        guard.apply_chat_template([{"role": "system", "content": "x"}, *chat], tokenize=False)


def test_a_real_cache_is_never_overwritten(offline_hub):
    """Twins go into a cache of their own: a cache whose refs/main names another commit of
    the same repository is refused, and nothing in it changes."""
    repo = offline_hub / "models--Qwen--Qwen3-8B"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("c" * 40)
    with pytest.raises(ValueError, match="another snapshot"):
        write_twin_cache(offline_hub, ["qwen3-8b"])
    assert (repo / "refs" / "main").read_text() == "c" * 40 and not (repo / "snapshots").exists()


def test_the_twin_of_llama4_loads_its_text_decoder_on_device_auto(offline_hub):
    """The multimodal wrapper's checkpoint loads as the causal LM the paper hooks, with every
    text weight read (the vision tower is left out), also spread with device_map="auto"."""
    write_twin_cache(offline_hub, ["llama-4-scout-17b-16e"])
    auto = load_model("llama-4-scout-17b-16e", dtype="bfloat16", device="auto")
    plain = load_model("llama-4-scout-17b-16e", dtype="bfloat16")
    assert type(plain.model).__name__ == "Llama4ForCausalLM"
    for (name, a), (_, b) in zip(
        auto.model.state_dict().items(), plain.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    stored = write_twin("llama-4-scout-17b-16e", offline_hub.parent / "stored")
    from safetensors.torch import load_file

    weights = load_file(stored / "model.safetensors")
    for name, value in plain.model.state_dict().items():
        assert torch.equal(value, weights[f"language_model.{name}"]), name


def test_the_synthetic_zip_has_the_release_schema_and_both_poles(tmp_path):
    data = synthetic_zip(400)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert b"SYNTHETIC" in archive.comment
        names = archive.namelist()
        table = pd.read_csv(archive.open(f"social-chem-101/{MEMBER}"), sep="\t", dtype=str)
    assert "social-chem-101/SYNTHETIC.txt" in names
    assert tuple(table.columns) == SOCIAL_CHEM_COLUMNS and len(table) == 400
    judgment = table["action-moral-judgment"].astype(int)
    assert (judgment > 0).any() and (judgment < 0).any() and (judgment == 0).any()
    assert (table["area"] == "synthetic").all()
    assert synthetic_zip(400) == data  # deterministic


def test_serve_makes_the_paper_data_path_local(tmp_path, monkeypatch):
    """Inside ``serve``: the official entry's download comes from 127.0.0.1 (the official
    path), verified by row count; the judge endpoint answers; the twins load by hub id."""
    from moralkit.rehearsal import serve

    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MORALKIT_DATA_MIRROR", raising=False)
    official = load_manifest()[SOCIAL_CHEM]
    with serve(tmp_path / "root", models=("qwen3-0.6b",)) as rehearsal:
        for key, value in rehearsal.env.items():
            monkeypatch.setenv(key, value)
        entry = load_manifest()[SOCIAL_CHEM]
        assert entry.url.startswith("http://127.0.0.1:") and entry.url.endswith(
            official.url.split("storage.googleapis.com", 1)[1]
        )
        assert entry.rows == N_ROWS and "SYNTHETIC" in entry.notes and entry.sha256 is None
        path, sha = fetch_with_checksum(SOCIAL_CHEM)
        assert path.name == "social-chem-101.SYNTHETIC.zip"  # never where the real one goes
        assert len(read_social_chem_file(path, entry, sha)) == N_ROWS
        hub = Path(rehearsal.env["HF_HUB_CACHE"])
        assert (hub / "models--Qwen--Qwen3-0.6B" / "refs" / "main").read_text() == twin_commit(
            "qwen3-0.6b"
        )
    monkeypatch.delenv(OVERLAY_ENV)
    assert load_manifest()[SOCIAL_CHEM] == official


# ------------------------------------------------------------------ the whole rehearsal
slow = [
    pytest.mark.slow,
    pytest.mark.rehearsal,  # `make rehearsal` runs it alone; `make test` (CI) runs it too
    pytest.mark.skipif(not SNAKEMAKE.exists(), reason="no snakemake"),
]


def with_rehearsal(test):
    for mark in slow:
        test = mark(test)
    return test


@with_rehearsal
def test_every_chapter_runs_on_the_paper_path(rehearsal_book):
    """Every chapter ran as a workflow job on the rehearsal profile, then the site was built;
    the steering chapter's generation and judging ran as jobs of their own."""
    out = rehearsal_book.out
    chapters = [c.chapter_id for c in list_chapters(REPO / "notebooks")]
    assert sorted(p.stem for p in (out / "chapters").glob("*.json")) == chapters
    assert (out / "site.json").is_file() and (rehearsal_book.html_dir / "index.html").is_file()
    # steered at every layer of the twin (this process does not see the twins' hub cache, so
    # the depth is the twin's, not the registry's 36), at the paper's three strengths
    params = wf.chapter_parameters(wf.steering_chapter("rehearsal"), "rehearsal")
    depth = twin_depth(get_model_spec(params["model"][0]))
    arms = params["steer_layers"].resolve(depth, name="steer_layers")
    strengths = params["steer_strengths"]
    assert len(list((out / "judge").glob("*.json"))) == len(arms) * len(strengths) == 6
    # the site of 23 models works offline too (issue 21): no page loads from another site
    assert third_party_requests(rehearsal_book.html_dir) == {}
    print(rehearsal_book.timings())


@with_rehearsal
def test_the_rehearsal_used_the_twins_the_zip_and_the_judge(rehearsal_book):
    executed = rehearsal_book.layout.executed_dir
    provenance = json.loads(
        (executed / "02_categorical_indifference" / "provenance.json").read_text()
    )
    models = {m["model_id"]: m for m in provenance["models"]}
    assert sorted(models) == sorted(PAPER_MODELS)
    for name, model in models.items():
        assert model["revision"] == twin_commit(name) and model["dtype"] == "bfloat16", name
    (data,) = provenance["data"]
    assert data["ground_truth"] == "socialchem"  # the synthetic zip, fetched over HTTP (or
    # found in the download cache of an earlier session: the same bytes)
    assert data["checksums"][SOCIAL_CHEM] == hashlib.sha256(synthetic_zip(N_ROWS)).hexdigest()
    assert all(r.endswith("social-chem-101.zip") for r in rehearsal_book.downloads)
    judged = [json.loads(p.read_text()) for p in (rehearsal_book.out / "judge").glob("*.json")]
    assert judged and not any(j["demonstration"] for j in judged)  # judge=environment
    assert rehearsal_book.judge_calls > 0


@with_rehearsal
def test_the_paper_protocol_judges_the_same_arms(rehearsal_book, tmp_path):
    """The judge job of one arm again, under the paper protocol (baseline always first, failures
    as ties, an unparsed answer scored 1) against the same endpoint."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(
        (REPO / "moralkit" / "profiles.yaml").read_text()
        + '\nrehearsal-paper-protocol:\n  extends: rehearsal\n  chapters:\n    "08":\n'
        + "      protocol: paper\n"
    )
    generated = rehearsal_book.out / "generate"
    steered = sorted(p for p in generated.glob("layer*.json"))[0]
    out = tmp_path / "judge.json"
    cmd = [sys.executable, str(REPO / "workflow" / "scripts" / "jobs.py"), "judge",
           "--profile", "rehearsal-paper-protocol", "--chapter", wf.steering_chapter("rehearsal"),
           "--baseline", str(generated / "baseline.json"), "--steered", str(steered),
           "--out", str(out)]  # fmt: skip
    env = {**os.environ, **rehearsal_book.env, "MORALKIT_PROFILES": str(profiles)}
    run = subprocess.run(cmd, env=env, text=True, capture_output=True)
    assert run.returncode == 0, run.stderr[-3000:]
    pairs = pd.read_csv(json.loads(out.read_text())["tables"]["pairs"])
    assert len(pairs) and (pairs["outcome"] != "failure").all()  # failures counted as ties
