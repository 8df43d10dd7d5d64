"""The landing page's findings at a glance and the claims page's replication counts."""

from __future__ import annotations

import json

from moralkit.book.findings import findings_table, flat_verdicts, replication_summary
from moralkit.book.layout import BookLayout
from moralkit.book.pages import claims_markdown, write_findings


def _measurements() -> dict:
    return {
        "categorical_indifference": {
            "value": 0.9,
            "inside_null_band": True,
            "chapter": "02_categorical_indifference",
            "profile": "tiny",
        },
        "replication_categorical": {
            "value": 1,
            "chapter": "11_replication",
            "profile": "tiny",
            "per_model": {
                "m1": {"emfd": "holds", "mfd2": "fails"},
                "m2": {"emfd": "holds", "mfd2": "not applicable"},
            },
        },
    }


def test_flat_verdicts_and_summary_count_only_decided_pairs():
    flat = flat_verdicts(_measurements()["replication_categorical"])
    assert flat == {
        "m1 · emfd": "holds",
        "m1 · mfd2": "fails",
        "m2 · emfd": "holds",
        "m2 · mfd2": "not applicable",
    }
    assert replication_summary(flat) == "holds on 2 of 3"
    assert replication_summary({}) == ""


def test_findings_table_follows_the_claims_verdicts():
    table = findings_table(_measurements()).set_index("claim_id")
    row = table.loc["categorical_indifference"]
    assert row["verdict"] == "agrees" and row["replication"] == "holds on 2 of 3"
    # a finding no chapter measured is listed as such, not dropped or invented
    assert table.loc["gradient_indifference", "verdict"] == "not measured"
    assert table.loc["gradient_indifference", "replication"] == ""


def _layout_with(tmp_path, measurements: dict) -> BookLayout:
    layout = BookLayout(root=tmp_path)
    for claim_id, m in measurements.items():
        out = layout.executed_dir / m["chapter"]
        out.mkdir(parents=True, exist_ok=True)
        claims = out / "claims.json"
        old = json.loads(claims.read_text()) if claims.exists() else {}
        claims.write_text(json.dumps({**old, claim_id: m}))
        (layout.executed_dir / f"{m['chapter']}.ipynb").write_text("{}")
    return layout


def test_generated_glance_page_and_figure(tmp_path):
    layout = _layout_with(tmp_path, _measurements())
    write_findings("tiny", "now", layout)
    text = (layout.generated_dir / "findings-table.md").read_text()
    assert "Categorical indifference" in text and "holds on 2 of 3" in text
    assert "(_executed/02_categorical_indifference.ipynb)" in text
    assert (layout.generated_dir / "findings.png").stat().st_size > 1000
    assert "holds on 2 of 3" in claims_markdown(layout)


def test_unpublished_chapter_values_are_not_shown(tmp_path):
    layout = _layout_with(tmp_path, _measurements())
    (layout.executed_dir / "11_replication.ipynb").unlink()  # failed: not published
    write_findings("tiny", "now", layout)
    assert "holds on" not in (layout.generated_dir / "findings-table.md").read_text()
