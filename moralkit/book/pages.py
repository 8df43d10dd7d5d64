"""The generated pages: the status table (per chapter: outcome, cold and cached wall times,
memory) and the claims table, which book/status.md and book/claims.md include."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from moralkit.book.findings import (
    FINDINGS,
    findings_markdown,
    findings_table,
    flat_verdicts,
    plot_findings,
    replication_summary,
    verdict_badge,
)
from moralkit.book.layout import REPO_BOOK, RUN_RECORD, BookLayout
from moralkit.book.markdown import chapter_link, table_row
from moralkit.book.sources import ChapterSource
from moralkit.claims import claims_table, load_claims, read_measurements
from moralkit.io import atomic_path, atomic_write_text, sha256_of

STATUS_HEADER = (
    "| chapter | profile | status | last run (UTC) | wall time | cold / cached run "
    "| peak memory | device |"
)


def read_chapter_status(output_dir: Path) -> dict:
    """run.json merged with the timing and memory fields of provenance.json."""
    status: dict = {}
    run = output_dir / RUN_RECORD
    if run.exists():
        status.update(json.loads(run.read_text(encoding="utf-8")))
    provenance = output_dir / "provenance.json"
    if provenance.exists():
        data = json.loads(provenance.read_text(encoding="utf-8"))
        for key in ("peak_memory_mb", "peak_gpu_memory_mb", "device"):
            status[key] = data.get(key)
        status["kernel_wall_time_s"] = data.get("wall_time_s")
    return status


def duration(seconds: float | None) -> str:
    """``42 s`` below two minutes, ``3.5 min`` above; empty for None."""
    if seconds is None:
        return ""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def wall_time_cell(info: dict) -> str:
    """This run's wall time and whether the activation caches were cold or warm."""
    text = duration(info.get("wall_time_s"))
    caches = info.get("caches")
    return f"{text} ({caches} caches)" if text and caches else text


def cold_and_cached_cell(info: dict) -> str:
    """The last recorded cold-cache and warm-cache times under this profile."""
    times = info.get("times") or {}
    if "cold" not in times and "warm" not in times:
        return ""
    return f"{duration(times.get('cold')) or '—'} / {duration(times.get('warm')) or '—'}"


def _status_row(chapter: ChapterSource, layout: BookLayout) -> str:
    info = read_chapter_status(layout.executed_dir / chapter.chapter_id)
    published = (layout.executed_dir / f"{chapter.chapter_id}.ipynb").exists()
    title = chapter.title.replace("|", "\\|")
    name = f"[{title}](_executed/{chapter.chapter_id}.ipynb)" if published else title
    if not info:
        return f"| {name} | | not run | | | | | |"
    status = info.get("status", "?")
    if not published and status == "ok":
        status = "not in this book"
    elif status == "ok" and info.get("source_sha") != sha256_of(chapter.path)[:16]:
        status = "ok (source changed since)"
    mem = info.get("peak_memory_mb")
    cells = [
        name,
        info.get("profile", ""),
        status,
        info.get("started", ""),
        wall_time_cell(info),
        cold_and_cached_cell(info),
        f"{mem:.0f} MiB" if mem else "",
        info.get("device") or "",
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def status_markdown(chapters: Sequence[ChapterSource], layout: BookLayout = REPO_BOOK) -> str:
    """The status table: one row per chapter (QuantEcon's execution-statistics idea).

    Links are relative to the book's source folder (the table is included by status.md).
    """
    lines = [STATUS_HEADER, "|---|---|---|---|---|---|---|---|"]
    lines += [_status_row(chapter, layout) for chapter in chapters]
    return "\n".join(lines) + "\n"


def published_measurements(layout: BookLayout = REPO_BOOK) -> dict[str, dict]:
    """Every published chapter's claims.json, merged (a failed chapter's values are left out)."""
    executed = layout.executed_dir
    files = [
        f
        for f in sorted(executed.glob("*/claims.json"))
        if (executed / f"{f.parent.name}.ipynb").exists()
    ]
    return read_measurements(files)


def claims_markdown(layout: BookLayout = REPO_BOOK) -> str:
    """The claims table from claims.yaml and every published chapter's claims.json.

    Each verdict is shown in its colour with what it rests on (the interval against the
    accepted region, the MDE and positive control, or the failed precondition). Indifference
    claims also say on how many (model, ground truth) pairs they hold, from the replication
    chapter's measurements. Below the table: the margin of every claim of no effect, and why.
    """
    executed = layout.executed_dir
    measurements = published_measurements(layout)
    table = claims_table(measurements)
    replication = {
        claim_id: replication_summary(flat_verdicts(measurements.get(rep)))
        for claim_id, (_, rep) in FINDINGS.items()
        if rep
    }
    lines = [
        "| claim | paper | measured | verdict | what it rests on | across ground truths | why |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        where = chapter_link(str(row["chapter"]), executed)
        measured = f"{row['measured']} ({where}, {row['profile']})" if row["measured"] else where
        cells = [
            row["claim"],
            row["paper_value"],
            measured,
            verdict_badge(row["verdict"]),
            row["evidence"],
            replication.get(row["claim_id"], ""),
            row["why"],
        ]
        lines.append(table_row(cells))
    return "\n".join(lines) + "\n\n" + margins_markdown()


def margins_markdown() -> str:
    """The claims of no effect: each margin (the smallest effect that matters) and why,
    as written in claims.yaml before any run."""
    lines = ["**Margins of the claims of no effect** (set before any run):", ""]
    for claim_id, claim in load_claims().items():
        check = claim.check
        if check.get("op") == "equivalence" and not check.get("over"):
            field = check.get("field", "value")
            margin = f"{check['margin']:g}"
            rule = {"upper": f"{field} ≤ {margin}", "lower": f"{field} ≥ −{margin}"}.get(
                check["side"], f"|{field}| ≤ {margin}"
            )
            lines.append(f"- `{claim_id}`: {rule}. {' '.join(str(check['why']).split())}")
    return "\n".join(lines) + "\n"


def write_generated_pages(
    chapters: Sequence[ChapterSource], profile: str, layout: BookLayout = REPO_BOOK
) -> None:
    """Write the status and claims tables that book/status.md and book/claims.md include."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    atomic_write_text(
        f"Book built {stamp} with profile **{profile}**.\n\n" + status_markdown(chapters, layout),
        layout.generated_dir / "status-table.md",
    )
    atomic_write_text(
        f"Measured values from the **{profile}** build of {stamp}.\n\n" + claims_markdown(layout),
        layout.generated_dir / "claims-table.md",
    )
    write_findings(profile, stamp, layout)


def write_findings(profile: str, stamp: str, layout: BookLayout = REPO_BOOK) -> None:
    """The landing page's findings-at-a-glance table and verdict grid (``findings.png``)."""
    import matplotlib.pyplot as plt  # lazily: importing moralkit.book stays light

    table = findings_table(published_measurements(layout))
    text = f"From the **{profile}** build of {stamp}.\n\n"
    if len(table):
        fig = plot_findings(table)
        with atomic_path(layout.generated_dir / "findings.png", suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        text += findings_markdown(table, layout.executed_dir)
        # the page that includes this file sits in book/, beside _generated/
        text += "\n![Verdicts at a glance](_generated/findings.png)\n"
    else:
        text += "No chapter of this build measured a finding.\n"
    atomic_write_text(text, layout.generated_dir / "findings-table.md")
