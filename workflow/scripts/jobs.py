"""One workflow job: ``python workflow/scripts/jobs.py <job> ... --out MARKER``.

Each job calls the chapters' own functions (the SAE chapter's recipe, the steering chapter's
Flames recipe, the Chapter API), never a copy of a chapter's steps, so its result lands in
moralkit's caches (``$MORALKIT_CACHE``: downloads, activations, sae, generations) where
``moralkit run`` and the chapters find it; the marker file (JSON, written last and atomically)
names that cache entry. A job that fails writes no marker, so Snakemake runs it again next time
and only it.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from moralkit.io import atomic_write_text
from moralkit.provenance import to_jsonable


def write_marker(path: str, record: dict) -> None:
    atomic_write_text(json.dumps(to_jsonable(record), indent=2, sort_keys=True) + "\n", path)


def job_fetch(args: argparse.Namespace) -> dict:
    """Fetch and verify one manifest file (mirror first, then its URL)."""
    from moralkit.data.fetch import fetch_with_checksum

    path, sha256 = fetch_with_checksum(args.name)
    return {"name": args.name, "path": str(path), "sha256": sha256}


def _chapter(chapter_id: str, profile: str, **params):
    """A Chapter of ``chapter_id`` whose outputs go to a scratch folder (only caches matter)."""
    from moralkit.chapter import Chapter
    from moralkit.notebooks import OUTPUT_DIR_ENV

    scratch = tempfile.mkdtemp(prefix=f"moralkit-job-{chapter_id}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)  # this job's own folder
    os.environ[OUTPUT_DIR_ENV] = scratch
    return Chapter.start(chapter_id, profile=profile, **params)


def _entry(acts) -> dict:
    keys = ("cache_key", "cache_entry", "cache_hit", "model_id", "revision", "weights_hash")
    return {k: acts.meta.get(k) for k in keys} | {"layers": list(acts.layers)}


def job_extract(args: argparse.Namespace) -> dict:
    """The activations a chapter asks for, through the Chapter API (same cache key)."""
    ch = _chapter(args.chapter, args.profile, model=args.model)
    # a model spread over several GPUs loads with device_map="auto"; the device is not part of
    # the cache key, so the chapters still find this entry
    overrides = {"device": args.device} if args.device else {}
    acts = ch.activations(args.model, ch.records(), **overrides)
    return {"model": args.model, "chapter": args.chapter, "profile": args.profile, **_entry(acts)}


def job_sae(args: argparse.Namespace) -> dict:
    """Chapter 07's recipe (:func:`moralkit.sae.recipe.sae_surgery`) for one (model, layer) with
    the SAE chapter's settings: the chapter and the steering chapter, calling the same recipe,
    find both SAEs in the store (paper §4.2-4.4; book: Methods › SAE surgery, methods/sae.md).
    """
    from moralkit.sae.recipe import sae_surgery
    from moralkit.sae.surgery import SurgeryConfig

    ch = _chapter(args.chapter, args.profile)
    config = SurgeryConfig.from_parameters(ch.params)
    layer = int(args.layer)
    surgery = sae_surgery(args.model, ch.records(), ch.activations, [layer], config)
    saes = [
        {"seed": s.seed, "pretrained": str(s.paths["pretrained"]),
         "finetuned": [str(p) for p in s.paths["finetuned"]]}
        for s in surgery.surgeries
    ]  # fmt: skip
    return {"model": args.model, "layer": layer, "preset": config.preset, "saes": saes}


def job_generate(args: argparse.Namespace) -> dict:
    """One arm of the steering chapter's Flames recipe (baseline, or the fine-tuned SAE at a
    layer and strength): its prompt sample, decoding and SAEs, so the chapter finds the
    responses in the generation cache. The SAE is loaded, never trained: the ``sae`` job ran."""
    from moralkit.evaluation.flames import FlamesConfig, flames_arm, flames_arms
    from moralkit.io import atomic_write_csv
    from moralkit.steering import load_steering_saes

    ch = _chapter(args.chapter, args.profile)
    config = FlamesConfig.from_parameters(ch.params)
    loaded = ch.load_model(args.model)
    layers = [] if args.layer is None else [int(args.layer)]
    arm = flames_arms(layers, [float(args.strength)] if layers else [])[-1]
    saes = None
    if layers:
        saes = load_steering_saes(args.model, ch.records(), ch.activations, layers, ch.params,
                                  device=loaded.device, train=False)  # fmt: skip
    # a pilot run (--limit) answers the sample's first prompts only
    prompts = config.prompts(limit=args.limit)
    table = flames_arm(loaded, prompts, arm, saes, config.decoding(), config.decoding_setting)
    path = atomic_write_csv(table, Path(args.out).resolve().with_suffix(".csv"))
    return {"arm": arm.label, "responses": str(path), "n": len(table)}


def job_judge(args: argparse.Namespace) -> dict:
    """The steering chapter's judging (:func:`moralkit.evaluation.flames.judge_responses`) of
    one steered arm against the baseline: pairwise and the PSC rubrics (network, rate-limited).
    Same judge, protocol and questions as the chapter, so a real judge's cached answers serve
    the chapter when it runs."""
    import pandas as pd

    from moralkit.evaluation.flames import FlamesConfig, judge_responses
    from moralkit.io import atomic_write_csv

    config = FlamesConfig.from_parameters(_chapter(args.chapter, args.profile).params)
    # answers are text ("None" and "" included); only layer and strength may be missing
    read = {"keep_default_na": False, "na_values": {"layer": [""], "strength": [""]}}
    arms = [pd.read_csv(json.loads(Path(m).read_text())["responses"], **read)
            for m in (args.baseline, args.steered)]  # fmt: skip
    pairwise, rubric, demonstration = judge_responses(pd.concat(arms, ignore_index=True), config)
    judged = pairwise.tables["pairs"]
    if (judged["outcome"] == "failure").all():  # no marker: the next run asks the judge again
        raise RuntimeError(f"every judgment failed; first: {judged['status_ab'].iloc[0]}")
    out = Path(args.out).resolve()
    tables = {
        name: str(atomic_write_csv(table, out.with_name(f"{out.stem}-{name}.csv")))
        for result in (pairwise, rubric)
        for name, table in result.tables.items()
    }
    return {"layer": args.layer, "strength": args.strength, "tables": tables,
            "demonstration": demonstration}  # fmt: skip


def job_chapter(args: argparse.Namespace) -> dict:
    """Execute one chapter into the book, exactly as ``moralkit book`` does."""
    from moralkit.book import (
        BookLayout,
        execute_chapter,
        find_chapter,
        tidy_executed_notebook,
        unpublish_failed,
    )

    layout = BookLayout(Path(args.root).resolve())
    chapter = find_chapter(args.chapter)
    run = execute_chapter(
        chapter,
        layout.executed_dir / f"{chapter.chapter_id}.ipynb",
        layout.executed_dir / chapter.chapter_id,
        args.profile,
        cwd=layout.executed_dir,
    )
    if not run.ok:
        unpublish_failed(run, layout)
        raise RuntimeError(f"chapter {chapter.chapter_id} failed:\n{run.error}")
    tidy_executed_notebook(run.notebook)
    return {"chapter": chapter.chapter_id, "profile": args.profile, "notebook": run.notebook,
            "outputs": run.output_dir, "wall_time_s": round(run.wall_time_s, 1)}  # fmt: skip


def job_site(args: argparse.Namespace) -> dict:
    """The book's last step, as in ``moralkit book``: unpublish stale pages, write pages, build."""
    from moralkit.book import (
        BookLayout,
        ensure_mathjax,
        list_chapters,
        run_jupyter_book,
        unpublish_stale,
        write_generated_pages,
    )

    layout = BookLayout(Path(args.root).resolve())
    chapters = list_chapters()
    ensure_mathjax(layout)
    dropped = unpublish_stale(chapters, args.profile, layout)
    write_generated_pages(chapters, args.profile, layout)
    html = run_jupyter_book(layout, strict=not args.no_strict)
    return {"profile": args.profile, "site": html / "index.html", "left_out": dropped}


JOBS = {
    "fetch": job_fetch,
    "extract": job_extract,
    "sae": job_sae,
    "generate": job_generate,
    "judge": job_judge,
    "chapter": job_chapter,
    "site": job_site,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--out", required=True, help="the marker file to write on success")
    for name in ("name", "profile", "model", "chapter", "layer", "strength", "root", "device"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--baseline", help="judge: the baseline generation marker")
    parser.add_argument("--steered", help="judge: the steered generation marker")
    parser.add_argument("--limit", type=int, default=0, help="generate: first N prompts only")
    parser.add_argument("--no-strict", action="store_true", help="site: warnings stay warnings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    write_marker(args.out, {"job": args.job, **JOBS[args.job](args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
