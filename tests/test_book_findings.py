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
            "separation": -0.02,
            "ci_low": -0.05,
            "ci_high": 0.01,
            "mde": 0.06,
            "chapter": "02_categorical_indifference",
            "profile": "tiny",
        },
        "replication_categorical": {
            "value": 1,
            "chapter": "11_replication",
            "profile": "tiny",
            "per_model": {
                "m1": {"emfd": "holds", "mfd2": "fails", "mfd": "inconclusive"},
                "m2": {"emfd": "holds", "mfd2": "not applicable"},
            },
        },
    }


def test_flat_verdicts_and_summary_count_only_decided_pairs():
    flat = flat_verdicts(_measurements()["replication_categorical"])
    assert flat == {
        "m1 · emfd": "holds",
        "m1 · mfd2": "fails",
        "m1 · mfd": "inconclusive",
        "m2 · emfd": "holds",
        "m2 · mfd2": "not applicable",
    }
    assert replication_summary(flat) == "holds on 2 of 4 (inconclusive on 1)"
    assert replication_summary({}) == ""
    assert replication_summary({"a": "holds", "b": "fails"}) == "holds on 1 of 2"


def test_findings_table_follows_the_claims_verdicts():
    table = findings_table(_measurements()).set_index("claim_id")
    row = table.loc["categorical_indifference"]
    assert row["verdict"] == "agrees"
    assert row["replication"] == "holds on 2 of 4 (inconclusive on 1)"
    # a finding no chapter measured is listed as such, not dropped or invented
    assert table.loc["gradient_indifference", "verdict"] == "not measured"
    assert table.loc["gradient_indifference", "replication"] == ""
    # every row says what its verdict rests on: the interval and MDE, or why there is none
    assert "[-0.05, 0.01]" in row["evidence"] and "MDE 0.06" in row["evidence"]
    assert table.loc["gradient_indifference", "evidence"]


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
    assert "Categorical indifference" in text and "holds on 2 of 4 (inconclusive on 1)" in text
    assert "(_executed/02_categorical_indifference.ipynb)" in text
    assert (layout.generated_dir / "findings.png").stat().st_size > 1000
    page = claims_markdown(layout)
    assert "holds on 2 of 4 (inconclusive on 1)" in page
    assert 'style="background:#1b9e77;color:#fff">agrees</span>' in page
    assert "`categorical_indifference`: separation ≤ 0.1. A cosine" in page  # margin and why


def test_unpublished_chapter_values_are_not_shown(tmp_path):
    layout = _layout_with(tmp_path, _measurements())
    (layout.executed_dir / "11_replication.ipynb").unlink()  # failed: not published
    write_findings("tiny", "now", layout)
    assert "holds on" not in (layout.generated_dir / "findings-table.md").read_text()


def test_inconclusive_has_its_own_colour_on_both_pages(tmp_path):
    measurements = _measurements()
    measurements["categorical_indifference"]["mde"] = 0.5  # the sample could not see 0.1
    layout = _layout_with(tmp_path, measurements)
    write_findings("tiny", "now", layout)
    glance = (layout.generated_dir / "findings-table.md").read_text()
    purple = 'style="background:#7570b3;color:#fff">inconclusive</span>'
    assert purple in glance and "MDE 0.5 vs margin 0.1" in glance
    assert purple in claims_markdown(layout)
