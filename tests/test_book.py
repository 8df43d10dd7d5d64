"""Book pipeline pieces: chapter discovery, parameters cells, figure links, status pages."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from moralkit import book
from moralkit.book import (
    BookLayout,
    ChapterSource,
    find_chapter,
    list_chapters,
    notebook_parameters,
    prepare_figure_cells,
    prune_executed,
    status_markdown,
    strip_progress_bars,
)
from moralkit.chapter import FIGURE_DATA_KEY

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"


def test_list_and_find_chapters(tmp_path):
    for name in ("02_b.md", "01_a.md", "README.md", "x_01.md", "10_c.md"):
        (tmp_path / name).write_text("# T\n")
    chapters = list_chapters(tmp_path)
    assert [c.chapter_id for c in chapters] == ["01_a", "02_b", "10_c"]
    assert find_chapter("2", chapters).chapter_id == "02_b"
    assert find_chapter("01_a", chapters).chapter_id == "01_a"
    assert find_chapter("10", chapters).chapter_id == "10_c"
    with pytest.raises(ValueError, match="unknown chapter '03'.*01_a, 02_b, 10_c"):
        find_chapter("03", chapters)


def test_notebook_parameters_of_the_demo_chapter():
    params = notebook_parameters(FIXTURES / "01_demo_chapter.md")
    assert params == {
        "profile": "quick",
        "model": None,
        "layers": None,
        "seed": None,
        "n_points": None,
    }
    assert ChapterSource("01_demo_chapter", FIXTURES / "01_demo_chapter.md").title == (
        "01 · Demo chapter"
    )


def test_notebook_without_parameters_cell(tmp_path):
    path = tmp_path / "03_x.md"
    path.write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\n"
        "kernelspec:\n  name: python3\n---\n# 03\n\n```{code-cell} ipython3\nx = 1\n```\n"
    )
    assert notebook_parameters(path) == {}


def _image(tag: str):
    return nbformat.v4.new_output("display_data", data={"image/png": tag})


def _link(name: str):
    return nbformat.v4.new_output(
        "display_data",
        data={"text/markdown": f"Figure data: [{name}](02_x/figures/{name})"},
        metadata={FIGURE_DATA_KEY: True},
    )


def _figure_cell(outputs, name="fig-x"):
    cell = nbformat.v4.new_code_cell("ch.save_figure(fig, 'x', data=df)")
    cell.metadata["mystnb"] = {"figure": {"name": name, "caption": "A curve."}}
    cell.outputs = outputs
    return cell


def _write(path: Path, cells) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nbformat.write(nb, path)
    return path


def test_figure_data_link_moves_into_the_caption(tmp_path):
    plain = nbformat.v4.new_code_cell("ch.save_table(df, 't')")
    plain.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": "Table"})]
    path = _write(tmp_path / "02_x.ipynb", [_figure_cell([_image("A"), _link("x.csv")]), plain])
    assert prepare_figure_cells(path) == 1
    figure_cell, table_cell = nbformat.read(path, as_version=4).cells
    assert [o.data["image/png"] for o in figure_cell.outputs] == ["A"]
    assert figure_cell.metadata.mystnb.figure.caption == (
        "A curve. Data: [x.csv](02_x/figures/x.csv)."
    )
    assert len(table_cell.outputs) == 1  # cells without figure metadata are left alone
    assert prepare_figure_cells(path) == 0  # idempotent


def test_each_image_of_a_figure_cell_becomes_its_own_figure(tmp_path):
    table = nbformat.v4.new_output("execute_result", data={"text/plain": "df"}, execution_count=1)
    cell = _figure_cell([_image("A"), _link("a.csv"), _image("B"), _link("b.csv"), table])
    path = _write(tmp_path / "02_x.ipynb", [cell])
    assert prepare_figure_cells(path) == 1
    first, second, rest = nbformat.read(path, as_version=4).cells
    assert first.source.startswith("ch.save_figure")
    assert first.metadata.mystnb.figure.name == "fig-x"
    assert [o.data["image/png"] for o in first.outputs] == ["A"]
    assert second.metadata.mystnb.figure == {
        "name": "fig-x-2",
        "caption": "A curve. Data: [b.csv](02_x/figures/b.csv).",
    }
    assert second.metadata.tags == ["remove-input"] and second.source == ""
    assert [o.data["image/png"] for o in second.outputs] == ["B"]
    assert "mystnb" not in rest.metadata and rest.metadata.tags == ["remove-input"]
    assert rest.outputs[0].data["text/plain"] == "df"
    assert len({c.id for c in (first, second, rest)}) == 3


def test_figure_cell_that_printed_keeps_its_text_as_the_figure(tmp_path):
    cell = _figure_cell([nbformat.v4.new_output("stream", name="stdout", text="No pairs\n")])
    path = _write(tmp_path / "06_x.ipynb", [cell])
    assert prepare_figure_cells(path) == 1
    (only,) = nbformat.read(path, as_version=4).cells
    assert only.metadata.mystnb.figure.name == "fig-x"
    assert [o.output_type for o in only.outputs] == ["display_data"]
    assert only.outputs[0].data["text/plain"] == "No pairs"


def test_strip_progress_bars_keeps_warnings(tmp_path):
    bars = "gradient m:   0%|          | 0/3 [00:00<?, ?it/s]\rgradient m: 100%|####| 3/3 [00:01]"
    warning = "/x/categorical.py:203: UserWarning: no prototype records for ['cheating']\n"
    cell = nbformat.v4.new_code_cell("run()")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=bars + "\n"),
        nbformat.v4.new_output("stream", name="stderr", text=warning + bars),
        nbformat.v4.new_output("stream", name="stderr", text="      \r"),
        nbformat.v4.new_output("stream", name="stdout", text="kept 1%|x| 1/100\n"),
    ]
    path = _write(tmp_path / "03_x.ipynb", [cell])
    assert strip_progress_bars(path) == 3
    outputs = nbformat.read(path, as_version=4).cells[0].outputs
    assert [o.name for o in outputs] == ["stderr", "stdout"]
    assert outputs[0].text == warning
    assert strip_progress_bars(path) == 0


def _executed(layout: BookLayout, chapter_id: str, profile: str, status: str = "ok") -> None:
    layout.executed_dir.mkdir(parents=True, exist_ok=True)
    (layout.executed_dir / f"{chapter_id}.ipynb").write_text("{}")
    out = layout.executed_dir / chapter_id
    out.mkdir(exist_ok=True)
    (out / "run.json").write_text(
        json.dumps(
            {
                "profile": profile,
                "status": status,
                "started": "2026-01-01 10:00:00",
                "wall_time_s": 200.0,
                "source_sha": "0",
            }
        )
    )
    (out / "provenance.json").write_text(
        json.dumps(
            {
                "peak_memory_mb": 1234.4,
                "device": "CPU X (2 cores)",
                "wall_time_s": 190.0,
            }
        )
    )


def test_prune_and_status(tmp_path):
    layout = BookLayout(tmp_path)
    sources = tmp_path / "nb"
    sources.mkdir()
    for name in ("01_a", "02_b", "03_c", "04_d"):
        (sources / f"{name}.md").write_text(f"# {name} title\n")
    chapters = list_chapters(sources)
    _executed(layout, "01_a", "tiny")
    _executed(layout, "02_b", "quick")  # other profile: not in a tiny book
    _executed(layout, "03_c", "tiny", status="failed")
    _executed(layout, "99_gone", "tiny")  # its source was deleted
    dropped = prune_executed(chapters, "tiny", layout)
    assert sorted(dropped) == ["02_b", "03_c", "99_gone"]
    assert sorted(p.name for p in layout.executed_dir.glob("*.ipynb")) == ["01_a.ipynb"]
    assert not (layout.executed_dir / "99_gone").exists()

    table = status_markdown(chapters, layout)
    rows = {line.split(" | ")[0]: line for line in table.splitlines()[2:]}
    assert rows["| [01_a title](_executed/01_a.ipynb)"].count("tiny") == 1
    first = rows["| [01_a title](_executed/01_a.ipynb)"]
    assert "ok (source changed since)" in first  # the recorded source hash differs
    assert "3.3 min" in first and "1234 MiB" in first and "CPU X (2 cores)" in first
    assert "not in this book" in rows["| 02_b title"]
    assert "| failed |" in rows["| 03_c title"]
    assert "not run" in rows["| 04_d title"]


def test_mathjax_is_vendored():
    mathjax = book.REPO_BOOK.book_dir / "_vendor" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").stat().st_size > 500_000
    assert len(list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))) > 10
    assert book.ensure_mathjax() == mathjax
