"""Book pipeline pieces: chapter discovery, parameters cells, figure links, status pages."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from moralkit import book
from moralkit.book import (
    BookLayout,
    ChapterSource,
    OutputFolderError,
    cache_state,
    find_chapter,
    list_chapters,
    prepare_figure_cells,
    prepare_output_dir,
    status_markdown,
    strip_progress_bars,
    unpublish_stale,
)
from moralkit.book.output_dirs import describe_output_dir, prepare_run_dir, record_output_files
from moralkit.notebooks import FIGURE_DATA_KEY, OUTPUT_MARKER, notebook_parameters

FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"
REPO = Path(__file__).resolve().parents[1]


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


def _executed(
    layout: BookLayout, chapter_id: str, profile: str, status: str = "ok", **record
) -> None:
    layout.executed_dir.mkdir(parents=True, exist_ok=True)
    (layout.executed_dir / f"{chapter_id}.ipynb").write_text("{}")
    prepared = prepare_run_dir(layout.executed_dir / chapter_id)
    (prepared.path / "run.json").write_text(
        json.dumps(
            {
                "profile": profile,
                "status": status,
                "started": "2026-01-01 10:00:00",
                "wall_time_s": 200.0,
                "source_sha": "0",
                **record,
            }
        )
    )
    (prepared.path / "provenance.json").write_text(
        json.dumps(
            {
                "peak_memory_mb": 1234.4,
                "device": "CPU X (2 cores)",
                "wall_time_s": 190.0,
            }
        )
    )
    record_output_files(prepared)  # as execute_chapter does after a run


def test_prune_and_status(tmp_path):
    layout = BookLayout(tmp_path)
    sources = tmp_path / "nb"
    sources.mkdir()
    for name in ("01_a", "02_b", "03_c", "04_d"):
        (sources / f"{name}.md").write_text(f"# {name} title\n")
    chapters = list_chapters(sources)
    _executed(layout, "01_a", "tiny", caches="warm", times={"cold": 900.0, "warm": 200.0})
    _executed(layout, "02_b", "quick")  # other profile: not in a tiny book
    _executed(layout, "03_c", "tiny", status="failed")
    _executed(layout, "99_gone", "tiny")  # its source was deleted
    dropped = unpublish_stale(chapters, "tiny", layout)
    assert sorted(dropped) == ["02_b", "03_c", "99_gone"]
    assert sorted(p.name for p in layout.executed_dir.glob("*.ipynb")) == ["01_a.ipynb"]
    assert not (layout.executed_dir / "99_gone").exists()
    foreign = layout.executed_dir / "98_mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not moralkit's")
    unpublish_stale(chapters, "tiny", layout)
    assert (foreign / "notes.txt").exists()  # never delete what moralkit did not write

    table = status_markdown(chapters, layout)
    rows = {line.split(" | ")[0]: line for line in table.splitlines()[2:]}
    assert rows["| [01_a title](_executed/01_a.ipynb)"].count("tiny") == 1
    first = rows["| [01_a title](_executed/01_a.ipynb)"]
    assert "ok (source changed since)" in first  # the recorded source hash differs
    assert "3.3 min (warm caches)" in first and "1234 MiB" in first and "CPU X (2 cores)" in first
    assert "| 15.0 min / 3.3 min |" in first  # the cold and the cached run's times
    assert "not in this book" in rows["| 02_b title"]
    assert "| failed |" in rows["| 03_c title"]
    assert "not run" in rows["| 04_d title"]


def test_mathjax_is_vendored():
    mathjax = book.REPO_BOOK.book_dir / "_vendor" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").stat().st_size > 500_000
    assert len(list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff"))) > 10
    assert book.ensure_mathjax() == mathjax


def test_cache_state_from_provenance():
    assert cache_state({"models": [{"cache_hit": True}, {"cache_hit": True}]}) == "warm"
    assert cache_state({"models": [{"cache_hit": True}, {"cache_hit": False}]}) == "cold"
    assert cache_state({"models": []}) == ""
    loaded = {"name": "m", "load_s": 1.0}  # a model the chapter ran itself: no cache_hit
    assert cache_state({"models": [loaded, {"cache_hit": True}]}) == "warm"
    # the run's own cache writes decide when they are recorded
    assert cache_state({"models": [{"cache_hit": True}], "cache_writes": 2}) == "cold"
    assert cache_state({"models": [loaded], "cache_writes": 0}) == "warm"


def test_output_dir_refuses_a_folder_moralkit_did_not_write(tmp_path):
    """Table B #1: a user's non-empty folder is refused and left as it was."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputFolderError, match=r"mine already holds files.*-o"):
        prepare_output_dir(mine)
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert not (mine / OUTPUT_MARKER).exists()


def test_output_dir_clears_its_own_earlier_run(tmp_path):
    prepared = prepare_run_dir(tmp_path / "run")
    folder = prepared.path
    (folder / "figures").mkdir()
    (folder / "figures" / "stale.png").write_bytes(b"old")
    record_output_files(prepared)  # what the run wrote
    assert prepare_output_dir(folder) == folder.resolve()
    assert not (folder / "figures").exists() and (folder / OUTPUT_MARKER).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_output_dir(empty) == empty.resolve()  # an empty folder is fine
    with pytest.raises(OutputFolderError, match="is not a folder"):
        prepare_output_dir(tmp_path / "empty" / OUTPUT_MARKER)


def test_output_dir_keeps_the_users_files_beside_moralkits(tmp_path):
    """Issue 21, bad input #1: the user's notes in an earlier run's folder survive a rerun;
    only the files moralkit wrote (listed with their sha256 in the marker) are replaced."""
    prepared = prepare_run_dir(tmp_path / "run")
    folder = prepared.path
    (folder / "tables").mkdir()
    (folder / "tables" / "by_layer.csv").write_text("a\n1\n")
    (folder / "run.json").write_text("{}")
    record_output_files(prepared)
    (folder / "my_notes.md").write_text("what I saw")
    (folder / "tables" / "my_extra.csv").write_text("mine")
    again = prepare_run_dir(folder)
    assert sorted(again.kept) == ["my_notes.md", "tables/my_extra.csv"]
    assert (folder / "my_notes.md").read_text() == "what I saw"
    assert (folder / "tables" / "my_extra.csv").read_text() == "mine"
    assert not (folder / "tables" / "by_layer.csv").exists() and not (folder / "run.json").exists()
    assert "its 0 file(s) replaced; 2 file(s) of yours kept" in describe_output_dir(folder)


def test_output_dir_refuses_when_moralkits_own_files_were_edited(tmp_path):
    """Issue 21, bad input #1: notes typed into the executed notebook are the user's work."""
    prepared = prepare_run_dir(tmp_path / "run")
    notebook = prepared.path / "02.ipynb"
    notebook.write_text("{}")
    record_output_files(prepared)
    notebook.write_text('{"my": "notes"}')
    with pytest.raises(
        OutputFolderError, match=r"1 file\(s\) moralkit wrote were changed.*02.ipynb"
    ):
        prepare_output_dir(prepared.path)
    assert notebook.read_text() == '{"my": "notes"}'


def test_an_older_marker_replaces_only_moralkits_layout(tmp_path):
    folder = tmp_path / "old"
    (folder / "figures").mkdir(parents=True)
    (folder / OUTPUT_MARKER).write_text("Written by moralkit.\n")  # no file list
    (folder / "figures" / "a.png").write_bytes(b"x")
    (folder / "02.ipynb").write_text("{}")
    (folder / "thesis.tex").write_text("mine")
    assert prepare_run_dir(folder).kept == ["thesis.tex"]
    assert sorted(p.name for p in folder.iterdir()) == [OUTPUT_MARKER, "thesis.tex"]


TIMING_CHAPTER = """---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  name: python3
---

# 01 · Timing

```{code-cell} ipython3
:tags: [parameters]

profile = "quick"
hit = None
```

```{code-cell} ipython3
import json, os
path = os.path.join(os.environ["MORALKIT_OUTPUT_DIR"], "provenance.json")
json.dump({"models": [{"cache_hit": hit}]}, open(path, "w"))
```
"""


def test_status_keeps_the_cold_and_the_cached_time(tmp_path):
    """A first run with cold caches, a second with warm ones: the status shows both times."""
    layout = BookLayout(tmp_path)
    source = tmp_path / "nb" / "01_timing.md"
    source.parent.mkdir()
    source.write_text(TIMING_CHAPTER)
    (chapter,) = list_chapters(source.parent)
    runs = []
    for hit in (False, True):
        runs.append(
            book.execute_chapter(
                chapter,
                layout.executed_dir / "01_timing.ipynb",
                layout.executed_dir / "01_timing",
                "tiny",
                {"hit": hit},
            )
        )
    assert [r.ok for r in runs] == [True, True], runs[0].error
    assert [r.caches for r in runs] == ["cold", "warm"]
    record = json.loads((layout.executed_dir / "01_timing" / "run.json").read_text())
    assert record["times"] == {
        "cold": round(runs[0].wall_time_s, 1),
        "warm": round(runs[1].wall_time_s, 1),
    }
    row = status_markdown([chapter], layout).splitlines()[2]
    assert "(warm caches)" in row
    cold, warm = (book.pages.duration(r.wall_time_s) for r in runs)
    assert f"| {cold} / {warm} |" in row


def _imports(path: Path) -> set[str]:
    import ast

    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_book_and_chapter_do_not_import_each_other():
    package = Path(book.__file__).parent
    for chapter in (package.parent / "chapter").glob("*.py"):
        assert not any(name.startswith("moralkit.book") for name in _imports(chapter)), chapter
    for module in package.glob("*.py"):
        assert "moralkit.chapter" not in _imports(module), module.name
        assert len(module.read_text().splitlines()) <= 450, module.name


def test_strip_progress_bars_drops_notebook_widget_bars(tmp_path):
    widget = {"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2}}
    cell = nbformat.v4.new_code_cell("run()")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={**widget, "text/plain": "  0%| | 0/3"}),
        nbformat.v4.new_output("display_data", data={"text/plain": "a table"}),
    ]
    path = _write(tmp_path / "08_x.ipynb", [cell])
    nb = nbformat.read(path, as_version=4)
    state = "application/vnd.jupyter.widget-state+json"
    nb.metadata["widgets"] = {state: {"state": {"abc": {"model_name": "HBoxModel"}}}}
    nbformat.write(nb, path)
    assert strip_progress_bars(path) == 2  # the bar and the widget state
    nb = nbformat.read(path, as_version=4)
    (kept,) = nb.cells[0].outputs
    assert kept.data["text/plain"] == "a table"
    # issue 21: no widget state, so myst-nb adds no require.js / widget manager from a CDN
    assert "widgets" not in nb.metadata


def test_the_book_config_loads_no_widget_script_from_a_cdn():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["sphinx"]["config"]["nb_ipywidgets_js"] == {}
