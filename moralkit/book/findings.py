"""The landing page's "findings at a glance": one generated table and figure from the claims.

Built from the same sources as the claims page (``moralkit/claims.yaml`` and every published
chapter's ``claims.json``), at book-build time, so it can never disagree with the chapters.
The replication chapter records, for each indifference claim, a ``replication_<diagnostic>``
measurement whose ``per_model`` extra is ``{model: {ground truth: verdict}}``; the table then
says on how many (model, ground truth) pairs the finding holds, fails or is inconclusive, and
the figure shows each one in its verdict's colour. Every row shows the evidence behind its
verdict: the interval, the MDE and positive control, or the failed precondition.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from moralkit.book.markdown import chapter_link, table_row
from moralkit.claims import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    NOT_CHECKABLE,
    VERDICT_COLOURS,
    claims_table,
    load_claims,
)

#: the paper's findings in reading order: claims.yaml id -> (reader's name, replication claim)
FINDINGS: dict[str, tuple[str, str | None]] = {
    "categorical_indifference": ("Categorical indifference", "replication_categorical"),
    "gradient_indifference": ("Gradient indifference", "replication_gradient"),
    "structural_indifference": ("Structural indifference", "replication_structural"),
    "dimensional_indifference": ("Dimensional indifference", "replication_dimensional"),
    "scale_no_effect": ("Scale does not remove it", None),
    "alignment_no_effect": ("Alignment does not remove it", None),
    "sae_typicality_up": ("SAE fine-tuning: typicality gradient rises", None),
    "sae_opposing_similarity_down": ("SAE fine-tuning: opposing categories separate", None),
    "flames_win_rate": ("SAE steering wins pairwise Flames judgments", None),
}
# the replication chapter's verdict words (moralkit.replication.HOLDS / FAILS / INCONCLUSIVE;
# not imported: that module pulls in the diagnostics, which `moralkit book` need not load)
_WORDS = {"holds": AGREES, "fails": DISAGREES, "inconclusive": INCONCLUSIVE}


def _verdict(value: object) -> str | None:
    """A replication verdict as agrees / disagrees / inconclusive, or None (not applicable,
    not checkable, missing)."""
    if isinstance(value, bool):
        return AGREES if value else DISAGREES
    if isinstance(value, str):
        return _WORDS.get(value.strip().lower())
    return None


def verdict_badge(verdict: str) -> str:
    """The verdict as a label in its colour (:data:`moralkit.claims.VERDICT_COLOURS`; the
    ``verdict`` class in book/_static/moralkit.css shapes it)."""
    colour = VERDICT_COLOURS.get(verdict, VERDICT_COLOURS[NOT_CHECKABLE])
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    text = "#222" if 0.299 * red + 0.587 * green + 0.114 * blue > 160 else "#fff"
    return f'<span class="verdict" style="background:{colour};color:{text}">{verdict}</span>'


def flat_verdicts(measurement: Mapping | None) -> dict[str, object]:
    """``{"<model> · <ground truth>": verdict}`` from a measurement's ``per_model`` extra."""
    per_model = (measurement or {}).get("per_model") or {}
    return {
        f"{model} · {gt}": verdict
        for model, by_gt in per_model.items()
        if isinstance(by_gt, Mapping)
        for gt, verdict in by_gt.items()
    }


def replication_summary(verdicts: Mapping[str, object] | None) -> str:
    """``"holds on 3 of 4"`` (plus ``"inconclusive on 1"`` where some are) from a ``verdicts``
    mapping; pairs where the diagnostic does not apply are not counted."""
    judged = [v for v in (_verdict(x) for x in (verdicts or {}).values()) if v is not None]
    if not judged:
        return ""
    text = f"holds on {judged.count(AGREES)} of {len(judged)}"
    open_ = judged.count(INCONCLUSIVE)
    return text + (f" (inconclusive on {open_})" if open_ else "")


def findings_table(
    measurements: Mapping[str, Mapping], claims: Mapping | None = None
) -> pd.DataFrame:
    """One row per finding of :data:`FINDINGS` that claims.yaml knows.

    Columns: verdict, value and ``evidence`` (interval, MDE, control or failed precondition)
    in this build, chapter, and ``replication`` (on how many (model, ground truth) pairs the
    finding holds, from its replication claim).
    """
    claims = claims or load_claims()
    table = claims_table(measurements, claims).set_index("claim_id")
    rows = []
    for claim_id, (name, replication) in FINDINGS.items():
        if claim_id not in table.index:
            continue
        row = table.loc[claim_id]
        verdicts = flat_verdicts(measurements.get(replication)) if replication else {}
        rows.append(
            {
                "claim_id": claim_id,
                "finding": name,
                "chapter": row["chapter"],
                "verdict": row["verdict"],
                "measured": row["measured"],
                "profile": row["profile"],
                # what the verdict rests on; for a verdict without evidence, its reason
                "evidence": row["evidence"] or row["why"],
                "replication": replication_summary(verdicts),
                "verdicts": dict(verdicts),
            }
        )
    return pd.DataFrame(rows)


def findings_markdown(table: pd.DataFrame, executed: Path) -> str:
    """The glance table as MyST Markdown, linking each finding to its chapter page."""
    lines = [
        "| finding | this build | measured | what it rests on | across models and ground truths "
        "| chapter |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        where = chapter_link(str(row["chapter"]), executed)
        measured = f"{row['measured']} ({row['profile']})" if row["measured"] else ""
        cells = [
            row["finding"],
            verdict_badge(row["verdict"]),
            measured,
            row["evidence"],
            row["replication"],
            where,
        ]
        lines.append(table_row(cells))
    return "\n".join(lines) + "\n"


def plot_findings(table: pd.DataFrame):
    """A compact verdict grid: findings × (this build, then each model · ground truth)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    columns = ["this build"] + sorted({k for v in table["verdicts"] for k in v})
    shown = (AGREES, DISAGREES, INCONCLUSIVE, NOT_CHECKABLE)
    code = {v: i for i, v in enumerate(shown)}
    grid = []
    for row in table.to_dict("records"):
        line = [code.get(row["verdict"], code[NOT_CHECKABLE])]
        for col in columns[1:]:
            verdict = _verdict(row["verdicts"].get(col))
            line.append(code.get(verdict, code[NOT_CHECKABLE]))
        grid.append(line)
    fig, ax = plt.subplots(figsize=(4.5 + 0.55 * len(columns), 1.4 + 0.42 * len(table)))
    cmap = ListedColormap([VERDICT_COLOURS[v] for v in shown])
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=len(shown) - 0.5, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(table)), table["finding"], fontsize=9)
    labels = {NOT_CHECKABLE: "not checkable / not measured"}
    handles = [Patch(color=VERDICT_COLOURS[v], label=labels.get(v, v)) for v in shown]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(shown),
              fontsize=8, frameon=False)  # fmt: skip
    fig.tight_layout()
    return fig
