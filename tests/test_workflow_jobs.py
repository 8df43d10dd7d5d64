"""The workflow's jobs (workflow/scripts/jobs.py) call the chapters' own recipes: what a job
stores, the chapters' calls find, with nothing trained or generated again.

Runs the jobs in-process on a test profile (the tiny random ``tiny-llama``, 5% of the records)
appended to a copy of ``moralkit/profiles.yaml``, with its own cache.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from shared_data import SHARED_DATA, needs_mirror

from moralkit.chapter import Chapter
from moralkit.evaluation.flames import FlamesConfig, flames_arms, flames_responses
from moralkit.sae import surgery as surgery_module
from moralkit.sae.recipe import SAE_CHAPTER, sae_surgery
from moralkit.sae.surgery import SurgeryConfig
from moralkit.steering import load_steering_saes

REPO = Path(__file__).resolve().parents[1]
STEERING_CHAPTER = "08_steering_evaluation"
TEST_PROFILE = """
jobtest:
  extends: tiny
  description: the job tests' profile
  defaults:
    model: [tiny-llama]
    layers: "0,-1"
    sample_scale: 0.051
  chapters:
    "07":
      model: [tiny-llama]
      sae_layers: "-1"
      n_unlabelled: 30
    "08":
      model: [tiny-llama]
      steer_layers: "-1"
      n_flames_prompts: 1
      max_new_tokens: 2
"""


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    """workflow/scripts/jobs.py as a module, on the test profile and a fresh cache."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text((REPO / "moralkit" / "profiles.yaml").read_text() + TEST_PROFILE)
    monkeypatch.setenv("MORALKIT_PROFILES", str(profiles))
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(SHARED_DATA))
    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(tmp_path / "out"))  # the jobs set it too
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # inspect-ai's logs and cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    spec = importlib.util.spec_from_file_location(
        "workflow_jobs", REPO / "workflow/scripts/jobs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_job(jobs, tmp_path: Path, job: str, chapter: str, *args: str) -> Path:
    """Run one job as Snakemake would; its marker file."""
    marker = tmp_path / f"{job}-{len(list(tmp_path.glob('*.json')))}.json"
    argv = [job, "--profile", "jobtest", "--chapter", chapter, "--model", "tiny-llama", *args]
    assert jobs.main([*argv, "--out", str(marker)]) == 0
    return marker


@pytest.mark.slow  # extraction, one SAE, three short generations, one judging (~1 min of CPU)
@needs_mirror
def test_the_jobs_store_what_the_chapters_calls_find(jobs, tmp_path, monkeypatch):
    stored = json.loads(run_job(jobs, tmp_path, "sae", SAE_CHAPTER, "--layer", "1").read_text())

    def no_training(*args, **kwargs):
        raise AssertionError("a chapter trained an SAE the sae job had stored")

    monkeypatch.setattr(surgery_module, "train_sae", no_training)
    monkeypatch.setattr(surgery_module, "finetune_sae", no_training)
    # chapter 07's call finds the job's SAEs ...
    sae_chapter = Chapter.start(SAE_CHAPTER, profile="jobtest")
    config = SurgeryConfig.from_parameters(sae_chapter.params)
    surgery = sae_surgery("tiny-llama", sae_chapter.records(), sae_chapter.activations, [1], config)
    found = [
        {"seed": s.seed, "pretrained": str(s.paths["pretrained"]),
         "finetuned": [str(p) for p in s.paths["finetuned"]]}
        for s in surgery.surgeries
    ]  # fmt: skip
    assert found == stored["saes"] and len(found) == config.n_seeds
    # ... and so does chapter 08's, with chapter 07's settings (the unlabelled texts included)
    steering = Chapter.start(STEERING_CHAPTER, profile="jobtest")
    saes = load_steering_saes(
        "tiny-llama", steering.records(), steering.activations, [1], steering.params
    )
    assert torch.equal(saes[("finetuned", 1)].sae.W_dec, surgery.surgeries[0].finetuned[0].W_dec)
    pretrained = Path(stored["saes"][0]["pretrained"])
    assert json.loads((pretrained / "meta.json").read_text())["unlabelled"]

    # the generation jobs answer with the chapter's prompt sample, decoding and SAE: the
    # chapter's own Flames call then finds every response in the generation cache
    baseline = run_job(jobs, tmp_path, "generate", STEERING_CHAPTER)
    steered = run_job(jobs, tmp_path, "generate", STEERING_CHAPTER, "--layer", "1",
                      "--strength", "1.0")  # fmt: skip
    arms = [json.loads(m.read_text())["arm"] for m in (baseline, steered)]
    assert arms == ["none", "finetuned@1 s=1"]
    flames = FlamesConfig.from_parameters(steering.params)
    loaded = steering.load_model("tiny-llama")
    responses = flames_responses(
        loaded, flames.prompts(), flames_arms([1], [1.0]), saes, flames.decoding(),
        flames.decoding_setting, progress=False,
    )  # fmt: skip
    assert len(responses) == 2 and responses["cached"].all()

    # the judge job grades them with the chapter's judge (scripted here: a demonstration)
    judged = run_job(jobs, tmp_path, "judge", STEERING_CHAPTER, "--layer", "1", "--strength",
                     "1.0", "--baseline", str(baseline), "--steered", str(steered))  # fmt: skip
    judged = json.loads(judged.read_text())
    assert judged["demonstration"] is True
    assert set(judged["tables"]) == {"pairs", "summary", "scores", "psc"}
