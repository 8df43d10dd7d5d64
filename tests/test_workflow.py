"""The Snakemake workflow (workflow/Snakefile): the paper DAG, the SLURM profile, real local runs.

Every Snakemake call here is a subprocess (as a user runs it) in a temporary working directory.
The real tiny book is built through the workflow once per session (``tiny_book``, conftest.py);
the failure-and-resume runs use a test profile (``wftest``: the tiny random ``tiny-llama`` model,
5% of the records) appended to a copy of ``moralkit/profiles.yaml``, with their own cache.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from shared_data import SHARED_DATA, needs_mirror
from workflow_runs import SNAKEMAKE, UP_TO_DATE, snakemake

from moralkit import compute_plan as cp
from moralkit import workflow as wf
from moralkit.book import list_chapters
from moralkit.data.manifest import load_manifest
from moralkit.models import PAPER_MODELS

REPO = Path(__file__).resolve().parents[1]
TEST_PROFILE = """
wftest:
  extends: tiny
  description: the workflow tests' profile
  defaults:
    model: [tiny-llama]
    layers: "0,-1"
    sample_scale: 0.051
"""

#: every test that starts Snakemake: each start imports moralkit (~20 s on a shared CPU)
needs_snakemake = [
    pytest.mark.slow,
    pytest.mark.skipif(not SNAKEMAKE.exists(), reason="snakemake not installed (extra cluster)"),
]


def with_snakemake(test):
    for mark in needs_snakemake:
        test = mark(test)
    return test


def job_blocks(output: str) -> dict[str, str]:
    """The dry-run's job descriptions, keyed by output path."""
    blocks = {}
    for block in re.split(r"\n(?=\[[A-Z][a-z]{2} )|\n(?=(?:local)?rule )", output):
        match = re.search(r"output: (\S+)", block)
        if match:
            blocks[match.group(1)] = block
    return blocks


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> str:
    result = snakemake(tmp_path_factory.mktemp("paper"), "-n", "--config", "profile=paper")
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@with_snakemake
def test_paper_dry_run_lists_every_model_and_chapter(paper_dry_run):
    blocks = job_blocks(paper_dry_run)
    chapters = [c.chapter_id for c in list_chapters(REPO / "notebooks")]
    assert len(PAPER_MODELS) == 23
    for model in PAPER_MODELS:
        assert f"_build/workflow/paper/activations/{model}.json" in blocks, model
    for chapter in chapters:
        assert f"_build/workflow/paper/chapters/{chapter}.json" in blocks, chapter
    counts = job_counts(paper_dry_run)
    saes = wf.sae_targets("paper", wf.chapter_ids())
    assert counts["extract"] == 23 and counts["chapter"] == len(chapters)
    assert counts["sae"] == len(saes) == 36  # Qwen3-8B, every layer
    strengths = wf.chapter_parameters(wf.steering_chapter("paper"), "paper")["steer_strengths"]
    assert counts["generate_steered"] == counts["judge"] == 36 * len(strengths) == 108
    assert counts["generate_baseline"] == 1 and counts["site"] == 1
    steering = blocks[f"_build/workflow/paper/chapters/{wf.steering_chapter('paper')}.json"]
    # the steering chapter starts once its SAEs and generated responses exist
    assert "sae/qwen3-8b/layer35.json" in steering and "generate/baseline.json" in steering
    assert "generate/layer35-s0.5.json" in steering
    assert "social-chem-101" in {
        m.group(1) for m in re.finditer(r"data/(\S+)\.json", paper_dry_run)
    }


def extract_resources(model: str) -> dict:
    chapter = wf.extraction_chapter(model, "paper", wf.chapter_ids())
    return cp.job_resources("extract", "paper", chapter, model)


@with_snakemake
def test_paper_resources_come_from_the_compute_plan(paper_dry_run):
    blocks = job_blocks(paper_dry_run)
    for model in ("qwen3-0.6b", "qwen3-32b", "qwen3-235b-a22b"):
        expected = extract_resources(model)
        block = blocks[f"_build/workflow/paper/activations/{model}.json"]
        assert f"gpu={expected['gpu']}" in block and f"mem_mb={expected['mem_mb']}" in block
    assert extract_resources("qwen3-235b-a22b")["gpu"] > 1
    assert extract_resources("qwen3-0.6b")["gpu"] == 1


@with_snakemake
def test_slurm_profile_dry_run_with_the_executor_plugin(tmp_path):
    result = snakemake(
        tmp_path, "--profile", str(REPO / "workflow" / "profiles" / "slurm"), "-n",
        "--config", "profile=paper",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Using profile" in result.stdout and "slurm" in result.stdout
    blocks = job_blocks(result.stdout)
    extract = blocks["_build/workflow/paper/activations/qwen3-8b.json"]
    assert "slurm_partition=gpu" in extract and "gpu=1" in extract
    judge = next(b for path, b in blocks.items() if "/judge/" in path)
    assert "slurm_partition=cpu" in judge and "judge_api=1" in judge
    # the plugin's own sbatch line for the largest model's job, from the dry-run's resources
    largest = resources_of(blocks["_build/workflow/paper/activations/qwen3-235b-a22b.json"])
    call = sbatch_line(largest)
    expected = extract_resources("qwen3-235b-a22b")
    assert f"--gpus={expected['gpu']}" in call and f"--mem {expected['mem_mb']}" in call
    assert f"-t {largest['runtime']}" in call and "--cpus-per-task=8" in call
    # a chapter that reads cached activations asks for no GPU and goes to the CPU partition;
    # a big model's job asks for more memory than a small one's
    chapters = "_build/workflow/paper/chapters"
    cpu_chapter = resources_of(blocks[f"{chapters}/02_categorical_indifference.json"])
    assert cpu_chapter["gpu"] == 0 and cpu_chapter["slurm_partition"] == "cpu"
    assert "--gpus" not in sbatch_line(cpu_chapter) and "gres" not in sbatch_line(cpu_chapter)
    pruning = resources_of(blocks[f"{chapters}/10_harmful_weights.json"])
    assert pruning["gpu"] > 0 and pruning["slurm_partition"] == "gpu"
    small = resources_of(blocks["_build/workflow/paper/activations/qwen3-0.6b.json"])
    assert largest["mem_mb"] > small["mem_mb"] and largest["gpu"] > small["gpu"]


def resources_of(block: str) -> dict:
    """The ``resources:`` line of a dry-run job as a dict (numbers as ints)."""
    line = re.search(r"resources: (.*)", block).group(1)
    pairs = (item.split("=", 1) for item in line.split(", "))
    return {k: int(v) if v.isdigit() else v for k, v in pairs}


def sbatch_line(resources: dict) -> str:
    """What snakemake-executor-plugin-slurm would submit for a job with these resources."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Resources(resources), threads=1, is_group=lambda: False)
    params = {
        "run_uuid": "test",
        "slurm_logfile": "log",
        "comment_str": "extract",
        "account": "",
        "partition": f"-p {resources['slurm_partition']}",
        "workdir": ".",
    }
    return get_submit_command(job, params) + set_gres_string(job)


# ------------------------------------------------------------------ real local runs
@with_snakemake
@needs_mirror
def test_one_cheap_rule_runs_and_then_is_up_to_date(tmp_path):
    """The quickest real run: one data file fetched and verified through the workflow."""
    env = {"MORALKIT_DATA_MIRROR": str(SHARED_DATA)}
    target = "_build/workflow/tiny/data/moralstrength-care.json"
    first = snakemake(tmp_path, target, "--cores", "1", "--config", "profile=tiny", env=env)
    assert first.returncode == 0, first.stdout[-3000:]
    marker = json.loads((tmp_path / target).read_text())
    entry = load_manifest()["moralstrength-care"]
    assert marker["sha256"] == entry.sha256 and marker["path"].endswith(entry.mirror_path)
    again = snakemake(tmp_path, target, "--cores", "1", "--config", "profile=tiny", env=env)
    assert again.returncode == 0 and UP_TO_DATE in again.stdout


def mirror_without(target: Path, missing: str) -> Path:
    """A mirror of ../shared/data (symlinks) lacking the manifest file ``missing``."""
    for entry in load_manifest():
        source = SHARED_DATA / entry.mirror_path
        if source.is_file() and entry.name != missing:
            link = target / entry.mirror_path
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return target


def markers(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_text()) for p in sorted(folder.glob("*.json"))}


@with_snakemake
@needs_mirror
def test_local_run_resumes_and_shares_the_cache(tmp_path, monkeypatch):
    """A job fails (a data file is missing), the rest finish; the rerun runs only what is left;
    a third run does nothing; the chapter then finds its activations in the same cache."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text((REPO / "moralkit" / "profiles.yaml").read_text() + TEST_PROFILE)
    mirror = mirror_without(tmp_path / "mirror", "moralstrength-purity")
    env = {"MORALKIT_PROFILES": str(profiles), "MORALKIT_DATA_MIRROR": str(mirror)}
    out = tmp_path / "_build" / "workflow" / "wftest"
    target = "_build/workflow/wftest/activations/tiny-llama.json"
    args = (target, "--profile", str(REPO / "workflow" / "profiles" / "local"), "--config",
            "profile=wftest", "chapters=02")  # fmt: skip

    first = snakemake(tmp_path, *args, env=env)
    assert first.returncode != 0 and "Error in rule fetch_data" in first.stdout
    assert "data file 'moralstrength-purity'" in first.stdout
    done = markers(out / "data")
    # the four other lexicon files and the positive control's judged actions (issue 18)
    assert sorted(done) == [f"moralstrength-{f}.json" for f in
                            ("authority", "care", "fairness", "loyalty")] + [
                            "social-chem-101-judged.json"]  # fmt: skip
    assert not (tmp_path / target).exists()

    name = "moralstrength-purity"
    (mirror / load_manifest()[name].mirror_path).symlink_to(
        SHARED_DATA / load_manifest()[name].mirror_path
    )
    second = snakemake(tmp_path, *args, env=env)
    assert second.returncode == 0, second.stdout[-3000:]
    after = markers(out / "data")
    assert {k: after[k] for k in done} == done  # finished jobs were not recomputed
    assert second.stdout.count("rule fetch_data") == 1 and "rule extract" in second.stdout

    third = snakemake(tmp_path, *args, env=env)
    assert third.returncode == 0 and UP_TO_DATE in third.stdout

    marker = json.loads((tmp_path / target).read_text())
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(tmp_path / "chapter-out"))
    from moralkit.chapter import Chapter

    ch = Chapter.start("02_categorical_indifference", profile="wftest")
    acts = ch.activations("tiny-llama", ch.records())
    assert acts.meta["cache_hit"] and acts.meta["cache_key"] == marker["cache_key"]

    # a profile change the chapter sees re-runs its extraction, and not the data jobs
    profiles.write_text(profiles.read_text().replace("sample_scale: 0.051", "sample_scale: 0.061"))
    changed = snakemake(tmp_path, *args, env=env)
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert "rule extract" in changed.stdout and "rule fetch_data" not in changed.stdout
    assert json.loads((tmp_path / target).read_text())["cache_key"] != marker["cache_key"]


def finished_outputs(log: str, rule: str) -> set[str]:
    """Outputs of the ``rule`` jobs that Snakemake reported finished in ``log``."""
    finished = set(re.findall(rf"Finished jobid: (\d+) \(Rule: {rule}\)", log))
    return {out for out, block in job_blocks(log).items()
            if re.search(r"jobid: (\d+)", block).group(1) in finished}  # fmt: skip


@with_snakemake
@needs_mirror
def test_an_interrupted_run_resumes_without_recomputing(tmp_path):
    """Ctrl-C (SIGINT to the process group) once the first job finished: the rerun does only
    what was left, and no job left a half-written marker."""
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text((REPO / "moralkit" / "profiles.yaml").read_text() + TEST_PROFILE)
    env = {"MORALKIT_PROFILES": str(profiles), "MORALKIT_DATA_MIRROR": str(SHARED_DATA),
           "MORALKIT_CACHE": str(tmp_path / "cache")}  # fmt: skip
    data = tmp_path / "_build" / "workflow" / "wftest" / "data"
    target = "_build/workflow/wftest/activations/tiny-llama.json"
    args = (target, "--profile", str(REPO / "workflow" / "profiles" / "local"), "--cores", "1",
            "--config", "profile=wftest", "chapters=02")  # fmt: skip
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "--directory",
           str(tmp_path), *args]  # fmt: skip
    with subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          start_new_session=True) as run:  # fmt: skip
        lines = []
        for line in run.stdout:  # until Snakemake reports the first finished job
            lines.append(line)
            if re.match(r"Finished jobid: \d+ \(Rule: fetch_data\)", line):
                break
        os.killpg(run.pid, signal.SIGINT)
        rest, _ = run.communicate(timeout=300)
    log = "".join(lines) + rest
    assert run.returncode != 0 and not (tmp_path / target).exists(), log[-3000:]
    done = {out: (tmp_path / out).read_text() for out in finished_outputs(log, "fetch_data")}
    stamps = {out: (tmp_path / out).stat().st_mtime_ns for out in done}
    assert done and all(p.suffix == ".json" for p in data.iterdir())  # nothing half-written

    again = snakemake(tmp_path, *args, env=env, own_cache=False)
    assert again.returncode == 0, again.stdout[-3000:]
    assert {out: (tmp_path / out).stat().st_mtime_ns for out in done} == stamps
    assert {out: (tmp_path / out).read_text() for out in done} == done
    n_data = len(list(data.glob("*.json")))  # every data job has run by now
    assert again.stdout.count("rule fetch_data") <= n_data - len(done)
    assert "rule extract" in again.stdout and (tmp_path / target).is_file()


@with_snakemake
def test_the_tiny_book_builds_through_the_workflow_and_then_is_up_to_date(tiny_book):
    """Every real chapter ran as a workflow job into the book, then the site was built (the
    ``tiny_book`` fixture, conftest.py); a second run finds nothing to do."""
    out = tiny_book.layout.root / "_build" / "workflow" / "tiny"
    chapters = [c.chapter_id for c in list_chapters(REPO / "notebooks")]
    assert sorted(p.stem for p in (out / "chapters").glob("*.json")) == chapters
    for chapter in chapters:
        assert (tiny_book.layout.executed_dir / chapter / "run.json").is_file(), chapter
    assert (out / "site.json").is_file() and (tiny_book.html_dir / "index.html").is_file()
    # the steering chapter waited for the SAE job instead of training its own
    saes = wf.chapter_saes(wf.steering_chapter("tiny"), "tiny")
    assert saes and all((out / "sae" / m / f"layer{n}.json").is_file() for m, n in saes)
    log = tiny_book.log
    assert log.index("(Rule: sae)") < log.index(f"chapter={wf.steering_chapter('tiny')}")
    again = snakemake(tiny_book.layout.root, *tiny_book.args, env=tiny_book.env, own_cache=False)
    assert again.returncode == 0 and UP_TO_DATE in again.stdout


@with_snakemake
def test_steering_jobs_share_the_chapters_generations_and_judge(tiny_book):
    """The paper profile's GPU and network jobs on the tiny book: generation with the steering
    chapter's settings finds the chapter's own responses in the cache (same keys), and the
    judge job grades them with the chapter's judge (here the scripted demonstration)."""
    chapter = wf.steering_chapter("tiny")
    (model, layer), *_ = wf.chapter_saes(chapter, "tiny")
    strength = float(wf.chapter_parameters(chapter, "tiny")["steer_strengths"][0])
    target = f"_build/workflow/tiny/judge/layer{layer}-s{strength}.json"
    run = snakemake(tiny_book.layout.root, target, *tiny_book.args, "steering=true",
                    env=tiny_book.env, own_cache=False)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert "rule generate_baseline" in run.stdout and "rule sae" not in run.stdout
    out = tiny_book.layout.root / "_build" / "workflow" / "tiny"
    for arm in ("baseline", f"layer{layer}-s{strength}"):
        responses = pd.read_csv(out / "generate" / f"{arm}.csv")
        assert len(responses) and responses["cached"].all(), arm  # the chapter's, reused
    judged = json.loads((tiny_book.layout.root / target).read_text())
    assert judged["demonstration"] is True
    pairs = pd.read_csv(judged["tables"]["pairs"])
    assert len(pairs) == len(responses) and (pairs["outcome"] != "failure").any()
    assert set(judged["tables"]) == {"pairs", "summary", "scores", "psc"}


# ------------------------------------------------------------------ helpers, no Snakemake
def test_the_chapters_that_extract_activations_are_declared():
    """``ACTIVATION_CHAPTERS`` names exactly the notebooks that call ``ch.activations``."""
    for chapter in list_chapters():
        calls = "ch.activations" in chapter.path.read_text(encoding="utf-8")
        assert wf.reads_activations(chapter.chapter_id) == calls, chapter.chapter_id
