"""The compute plan (moralkit/compute_plan/): computed from the registry and the profile, on
the Re-running page, and the source of the workflow's per-rule resources."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import needs_mirror

from moralkit import compute_plan as cp
from moralkit import workflow as wf
from moralkit.models import PAPER_MODELS, get_model_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def paper_plan():
    return cp.plan_table("paper")


def test_the_page_carries_the_plan_of_the_paper_profile():
    """book/reproduce.md holds exactly what the module computes (regenerate it with
    ``python -m moralkit.compute_plan --write book/reproduce.md``)."""
    page = (REPO / "book" / "reproduce.md").read_text(encoding="utf-8")
    section = page.split(cp.START, 1)[1].split(cp.END, 1)[0]
    assert cp.START + section + cp.END == cp.page_section("paper")
    assert "estimate" in section and "TFLOP/s sustained" in section


def test_plan_rows_come_from_registry_and_profile(paper_plan):
    rows = paper_plan[paper_plan["chapter"] != "total"]
    extract = rows[rows["work"].str.startswith("extract 16,315 records")]
    assert list(extract["model"]) == list(PAPER_MODELS)  # each model extracted once, in 02
    assert set(extract["chapter"]) == {"02"}
    by = extract.set_index("model")
    # forward FLOPs: 2 x active parameters x tokens, so a MoE model counts its active experts
    for model in ("qwen3-8b", "qwen3-235b-a22b"):
        spec = get_model_spec(model)
        active = spec.active_params_b or spec.params_b
        assert by.loc[model, "forward FLOPs"] == pytest.approx(2 * active * 1e9 * 16_315 * 16)
    assert by.loc["qwen3-235b-a22b", "GPUs"] > 1 == by.loc["qwen3-0.6b", "GPUs"]
    assert by.loc["qwen3-32b", "GPU memory (GB)"] > 64 > by.loc["qwen3-8b", "GPU memory (GB)"]
    hours = by["GPU-hours (estimate)"]
    assert hours["qwen3-235b-a22b"] > hours["qwen3-8b"] > hours["qwen3-0.6b"] > 0
    # chapters that read cached activations have no GPU work of their own
    assert not set(rows["chapter"]) & {"01", "03", "04", "05", "06"}
    total = paper_plan.iloc[-1]
    assert total["GPU-hours (estimate)"] == pytest.approx(rows["GPU-hours (estimate)"].sum())


def test_plan_follows_the_profile_sizes():
    """Halving the records halves extraction FLOPs; more steered strengths, more generation."""
    params = dict(wf.chapter_parameters("02_categorical_indifference", "paper"))
    full = cp.extraction_work("02", "qwen3-8b", params)
    half = cp.extraction_work("02", "qwen3-8b", {**params, "sample_scale": 0.5})
    assert cp.work_flops(half) == pytest.approx(cp.work_flops(full) / 2)
    steer = dict(wf.chapter_parameters("08_steering_evaluation", "paper"))
    more = {**steer, "steer_strengths": [*steer["steer_strengths"], 2.0]}

    def generated(p):
        (work,) = [w for w in cp.chapter_work("08_steering_evaluation", p) if w.kind == "generate"]
        return work.decode_steps

    assert generated(more) > generated(steer)


def test_sae_and_pruning_work_count_seeds_folds_unity_and_random_masks():
    """Chapter 07: one pretraining per seed (one when shared) and one fine-tuning per seed and
    fold; chapter 10: the unity prompts' second backward pass and every random mask."""
    sae = dict(wf.chapter_parameters("07_sae_surgery", "paper"))

    def sae_flops(**change):
        (work,) = [x for x in cp.chapter_work("07_sae_surgery", {**sae, **change}) if x.flops]
        return work.flops

    one = sae_flops(n_seeds=1, n_folds=2)
    assert sae_flops(n_seeds=3, n_folds=2) == pytest.approx(3 * one)
    assert sae_flops(n_seeds=3, n_folds=2, shared_pretraining=True) < 3 * one
    # each fold fine-tunes on the other folds: k folds cost k - 1 passes over the records
    two, three, five = (sae_flops(n_seeds=1, n_folds=k) for k in (2, 3, 5))
    assert three > two
    assert five - two == pytest.approx(3 * (three - two))

    prune = dict(wf.chapter_parameters("10_harmful_weights", "paper"))
    prune["model"] = ["qwen3-8b"]

    def pieces(**change):
        work = cp.chapter_work("10_harmful_weights", {**prune, **change})
        return {x.what.split(":")[0].split(" x ")[0]: x for x in work}

    base = pieces(n_random_masks=0)
    calib = base["SNIP scores"]
    groups, per_group = 3, prune["unity_per_group"]
    expected = 2 * (groups * per_group + per_group) + prune["n_calibration"] + prune["n_retain"]
    assert f"{expected + per_group} backward passes" in calib.what
    more = pieces(n_random_masks=20)
    masks = [k for k in more if "random masks" in k][0]
    fewer = [k for k in base if "random masks" in k][0]
    assert more[masks].tokens > base[fewer].tokens > 0


def test_job_resources_derive_from_the_plan():
    """A chapter that needs no GPU asks for none; a big model asks for more memory and GPUs
    than a small one; a CPU profile asks for no GPU anywhere."""
    chapter = wf.extraction_chapter("qwen3-8b", "paper", wf.chapter_ids())
    big = cp.job_resources("extract", "paper", chapter, "qwen3-235b-a22b")
    small = cp.job_resources("extract", "paper", chapter, "qwen3-0.6b")
    assert big["mem_mb"] > small["mem_mb"] and big["gpu"] > small["gpu"] == 1
    assert big["gpu"] == cp.gpus_for("qwen3-235b-a22b")
    for cpu_only in ("01", "02", "03", "04", "05", "06"):
        (chapter,) = wf.chapter_ids([cpu_only])
        assert cp.job_resources("chapter", "paper", chapter)["gpu"] == 0, chapter
    (pruning,) = wf.chapter_ids(["10"])
    assert cp.job_resources("chapter", "paper", pruning)["gpu"] == big["gpu"]
    for rule, job_chapter, model in (("extract", chapter, "qwen3-8b"), ("chapter", pruning, None)):
        assert cp.job_resources(rule, "rehearsal", job_chapter, model)["gpu"] == 0


def test_local_checkpoint_counts_replace_the_registry(offline_hub):
    """With a checkpoint's config in the hub cache, resources follow the model a job will load
    (here a tiny twin), while the page's plan keeps the registry's numbers."""
    from moralkit.rehearsal.hub_cache import write_twin_cache

    write_twin_cache(offline_hub, ["qwen3-235b-a22b"])
    local = cp.model_shape("qwen3-235b-a22b", local=True)
    registry = cp.model_shape("qwen3-235b-a22b")
    assert registry.params_b == 235.0 and registry.experts == "8 of 128"
    assert local.params_b < 0.001 and local.active_b < local.params_b  # 2 of 8 experts active
    assert local.n_layers == cp.model_shape("qwen3-235b-a22b", local=True).n_layers < 94
    assert cp.host_memory_mb("qwen3-235b-a22b", "bfloat16", False, local=True) < 4096


@needs_mirror
def test_workload_counts_are_the_loaders(offline_mirror):
    """The item counts the plan assumes are what the data loaders give."""
    from moralkit.data.benchmarks import ethics_commonsense, moral_stories
    from moralkit.data.unlabelled import unlabelled_texts
    from moralkit.data.valuebench import ValueItemsConfig, load_value_items

    w = cp.Workload()
    splits = load_value_items(ValueItemsConfig())["split"].value_counts()
    assert (splits["find"], splits["measure"]) == (w.pvq_find_items, w.pvq_measure_items)
    assert len(unlabelled_texts(-1, seed=42, exclude=[])) == w.unlabelled_texts
    assert len(moral_stories("test")) == w.moral_stories
    assert len(ethics_commonsense("test")) == w.ethics
    assert len(ethics_commonsense("test-hard")) == w.ethics_hard
