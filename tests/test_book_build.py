"""Building the book end to end (slow): the real chapters on the tiny profile (built through the
workflow, as the tests' one real build), ``moralkit book`` on a demo chapter and on a failing
chapter, and a headless-Chromium check of a built page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from browser import find_chromium, rendered_dom, screenshot_page, third_party_requests
from workflow_runs import copy_book

from moralkit.book import BookLayout, ChapterFailed, build_book, list_chapters

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "notebooks"

pytestmark = pytest.mark.slow


def chapter_pages(layout: BookLayout) -> dict[str, str]:
    return {p.stem: p.read_text() for p in (layout.html_dir / "_executed").glob("*.html")}


# ``tiny_book`` (conftest.py): the real chapters on the tiny profile, built by the workflow
def test_tiny_book_has_every_chapter_with_a_figure(tiny_book):
    chapters = list_chapters(REPO / "notebooks")
    pages = chapter_pages(tiny_book.layout)
    assert sorted(pages) == [c.chapter_id for c in chapters]
    for chapter in chapters:
        html = pages[chapter.chapter_id]
        assert re.search(r"<img [^>]*src=\"\.\./_images/", html), chapter.chapter_id
        assert "Provenance of this page" in html, chapter.chapter_id
        assert "_downloads/" in html and ".csv" in html, chapter.chapter_id  # figure/table data
        assert 'class="caption-number"' in html, chapter.chapter_id  # numbered figures
        assert "Traceback" not in html, chapter.chapter_id


def test_tiny_book_works_offline(tiny_book):
    """Issue 21: no page of the built book loads a script, stylesheet or image from another
    site (the 2026-12-05 build loaded require.js and the widget manager from two CDNs)."""
    assert third_party_requests(tiny_book.html_dir) == {}


def test_tiny_book_status_and_claims_pages(tiny_book):
    status = (tiny_book.html_dir / "status.html").read_text()
    for chapter in list_chapters(REPO / "notebooks"):
        assert chapter.chapter_id in status or chapter.title.split("·")[-1].strip() in status
    assert status.count("<td><p>tiny</p></td>") == len(list_chapters(REPO / "notebooks"))
    assert "caches)</p></td>" in status  # wall times say whether caches were cold or warm
    claims = (tiny_book.html_dir / "claims.html").read_text()
    assert "16,315" in claims and "0.26" in claims
    assert "not checkable here" in claims
    assert (tiny_book.html_dir / "_static" / "mathjax" / "tex-mml-chtml.js").exists()


def test_demo_chapter_book(tmp_path):
    layout = copy_book(tmp_path)
    html_dir = build_book("tiny", layout=layout, notebook_dir=FIXTURES, log=lambda _: None)
    page = (html_dir / "_executed" / "01_demo_chapter.html").read_text()
    assert page.count("<figure") == 1  # the CSV link went into the caption, not a 2nd figure
    assert re.search(
        r'Fig\. 1 </span><span class="caption-text">A demo curve over layers\. '
        r'Data: <a class="reference download internal"',
        page,
    )
    assert 'href="#fig-01-demo"' in page  # {numref} resolved
    downloads = sorted(p.name for p in (html_dir / "_downloads").rglob("*.csv"))
    assert downloads == ["demo_curve.csv", "demo_summary.csv"]
    assert "_sources/_executed/01_demo_chapter.ipynb" in page  # the download button
    assert (html_dir / "_sources" / "_executed" / "01_demo_chapter.ipynb").exists()
    claims = (html_dir / "claims.html").read_text()
    # the demo records dimensional_indifference = 0.2 [0.15, 0.25]: inside the margin 0.5
    assert re.search(r'<span class="verdict" style="background:#1b9e77[^"]*">agrees</span>', claims)
    assert "interval of value [0.15, 0.25]" in claims  # what the verdict rests on
    status = (html_dir / "status.html").read_text()
    assert "01 · Demo chapter" in status and "<p>ok</p>" in status
    assert 'src="_static/mathjax/tex-mml-chtml.js' in (html_dir / "intro.html").read_text()
    assert third_party_requests(html_dir) == {}


def test_failing_chapter_fails_the_build(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    shutil.copy(FIXTURES / "01_demo_chapter.md", notebooks)
    text = (FIXTURES / "01_demo_chapter.md").read_text()
    broken = text.replace(
        'ch.save_table(data.describe().reset_index(), "demo_summary")',
        'raise RuntimeError("planted failure")',
    )
    (notebooks / "02_broken.md").write_text(broken.replace("01_demo_chapter", "02_broken"))
    layout = copy_book(tmp_path / "site")
    logs: list[str] = []
    with pytest.raises(ChapterFailed, match="02_broken"):
        build_book("tiny", layout=layout, notebook_dir=notebooks, log=logs.append)
    joined = "\n".join(logs)
    assert "planted failure" in joined and "raise RuntimeError" in joined  # cell + traceback
    assert not layout.html_dir.exists()  # nothing published
    assert not (layout.executed_dir / "02_broken.ipynb").exists()
    assert (layout.build_dir / "failed" / "02_broken.ipynb").exists()


@pytest.mark.skipif(find_chromium() is None, reason="no chromium (apt-get install chromium)")
def test_chapter_page_screenshot_and_math(tiny_book, tmp_path):
    page = sorted((tiny_book.html_dir / "_executed").glob("*.html"))[0]
    png = screenshot_page(page, tmp_path / "page.png", height=2000)
    assert png.stat().st_size > 50_000
    import matplotlib.image

    pixels = matplotlib.image.imread(png)
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels[..., :3].std() > 0.05  # not a blank page
    dom = rendered_dom(tiny_book.html_dir / "intro.html")
    assert "<mjx-container" in dom  # MathJax typeset the intro's math offline
