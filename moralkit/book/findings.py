"""The landing page's "findings at a glance": one generated table and figure from the claims.

Built from the same sources as the claims page (``moralkit/claims.yaml`` and every published
chapter's ``claims.json``), at book-build time, so it can never disagree with the chapters.
The replication chapter records, for each indifference claim, a ``replication_<diagnostic>``
measurement whose ``per_model`` extra is ``{model: {ground truth: verdict}}``; the table then
says on how many (model, ground truth) pairs the finding holds, and the figure shows each one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from moralkit.book.markdown import chapter_link, table_row
from moralkit.claims import AGREES, DISAGREES, claims_table, load_claims

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
# the replication chapter's verdict words (moralkit.replication.HOLDS / FAILS; not imported:
# that module pulls in the diagnostics, which `moralkit book` need not load to write pages)
_HOLDS = {"holds": True, "fails": False}


def _holds(value: object) -> bool | None:
    """A verdict as True (holds) / False (fails) / None (mixed, not applicable, missing)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _HOLDS.get(value.strip().lower())
    return None


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
    """``"holds on 3 of 4"`` from a ``verdicts`` mapping (undecided entries not counted)."""
    decided = [v for v in (_holds(x) for x in (verdicts or {}).values()) if v is not None]
    if not decided:
        return ""
    return f"holds on {sum(decided)} of {len(decided)}"


def findings_table(
    measurements: Mapping[str, Mapping], claims: Mapping | None = None
) -> pd.DataFrame:
    """One row per finding of :data:`FINDINGS` that claims.yaml knows.

    Columns: verdict and value in this build, chapter, and ``replication`` (on how many
    (model, ground truth) pairs the finding holds, from its replication claim).
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
                "replication": replication_summary(verdicts),
                "verdicts": dict(verdicts),
            }
        )
    return pd.DataFrame(rows)


def findings_markdown(table: pd.DataFrame, executed: Path) -> str:
    """The glance table as MyST Markdown, linking each finding to its chapter page."""
    lines = [
        "| finding | this build | measured | across models and ground truths | chapter |",
        "|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        where = chapter_link(str(row["chapter"]), executed)
        measured = f"{row['measured']} ({row['profile']})" if row["measured"] else ""
        lines.append(
            table_row(
                [row["finding"], f"**{row['verdict']}**", measured, row["replication"], where]
            )
        )
    return "\n".join(lines) + "\n"


def plot_findings(table: pd.DataFrame):
    """A compact verdict grid: findings × (this build, then each model · ground truth)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    columns = ["this build"] + sorted({k for v in table["verdicts"] for k in v})
    codes = {AGREES: 2, DISAGREES: 0}
    grid = []
    for row in table.to_dict("records"):
        line = [codes.get(row["verdict"], 1)]
        for col in columns[1:]:
            holds = _holds(row["verdicts"].get(col))
            line.append(1 if holds is None else 2 * int(holds))
        grid.append(line)
    fig, ax = plt.subplots(figsize=(4.5 + 0.55 * len(columns), 1.2 + 0.42 * len(table)))
    cmap = ListedColormap(["#d95f02", "#d9d9d9", "#1b9e77"])
    ax.imshow(grid, cmap=cmap, vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(table)), table["finding"], fontsize=9)
    ax.set_title("Green: holds / agrees · orange: does not · grey: not checkable", fontsize=9)
    fig.tight_layout()
    return fig
