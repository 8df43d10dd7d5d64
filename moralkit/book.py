"""Execute the chapter notebooks with papermill and build the Jupyter Book (v1) site.

Pipeline (environment-notes "Jupyter Book: use v1"): jupytext MyST notebook (notebooks/NN_*.md)
-> papermill with the profile and parameters -> executed ``.ipynb`` in ``book/_executed/`` with the
chapter's tables and figures beside it -> status and claims pages -> ``jupyter-book build`` with
notebook execution off and warnings as errors. A failing chapter stops the build, so a page
without outputs is never published.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from moralkit.io import atomic_path, atomic_write_text, sha256_of
from moralkit.provenance import REPO_ROOT, to_jsonable, write_json

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
RUN_RECORD = "run.json"
_CHAPTER_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class ChapterSource:
    """A chapter notebook in notebooks/: ``02_categorical_indifference.md``."""

    chapter_id: str
    path: Path

    @property
    def number(self) -> str:
        return self.chapter_id.split("_", 1)[0]

    @property
    def title(self) -> str:
        """The first ``# `` heading of the notebook (the id if there is none)."""
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return self.chapter_id


@dataclass
class ChapterRun:
    """The outcome of executing one chapter."""

    chapter: ChapterSource
    ok: bool
    notebook: Path
    output_dir: Path
    wall_time_s: float
    error: str = ""


@dataclass(frozen=True)
class BookLayout:
    """Where the book's pieces live, all derived from one root (the repo, or a test copy).

    ``<root>/_config.yml`` and ``<root>/_toc.yml`` configure the book whose source folder is
    ``<root>/book``; executed chapters go to ``book/_executed/`` (one ``<id>.ipynb`` plus a
    ``<id>/`` folder of tables, figures, claims.json, provenance.json and run.json) and the
    site to ``<root>/_build/html``.
    """

    root: Path = REPO_ROOT

    @property
    def book_dir(self) -> Path:
        return self.root / "book"

    @property
    def executed_dir(self) -> Path:
        return self.book_dir / "_executed"

    @property
    def generated_dir(self) -> Path:
        return self.book_dir / "_generated"

    @property
    def build_dir(self) -> Path:
        return self.root / "_build"

    @property
    def html_dir(self) -> Path:
        return self.build_dir / "html"

    @property
    def config(self) -> Path:
        return self.root / "_config.yml"

    @property
    def toc(self) -> Path:
        return self.root / "_toc.yml"


REPO_BOOK = BookLayout()


class ChapterFailed(RuntimeError):
    """Raised by ``moralkit book`` when at least one chapter failed to execute."""


# ---------------------------------------------------------------------- chapters
def list_chapters(notebook_dir: str | Path | None = None) -> list[ChapterSource]:
    """Chapter notebooks ``NN_name.md`` in ``notebook_dir`` (default notebooks/), sorted."""
    folder = Path(notebook_dir or os.environ.get("MORALKIT_NOTEBOOK_DIR") or NOTEBOOK_DIR)
    if not folder.is_dir():
        return []
    return [
        ChapterSource(p.stem, p) for p in sorted(folder.glob("*.md")) if _CHAPTER_RE.match(p.stem)
    ]


def find_chapter(name: str, chapters: Sequence[ChapterSource] | None = None) -> ChapterSource:
    """A chapter by full id, number ("02", "2") or unique id prefix; errors list the chapters."""
    chapters = list_chapters() if chapters is None else list(chapters)
    key = str(name).strip().removesuffix(".md")
    if key.isdigit():
        key = f"{int(key):02d}"
    hits = [c for c in chapters if c.chapter_id == key] or [
        c for c in chapters if c.number == key or c.chapter_id.startswith(key)
    ]
    if len(hits) != 1:
        listing = ", ".join(c.chapter_id for c in chapters) or "(none found)"
        problem = "ambiguous" if hits else "unknown"
        raise ValueError(f"{problem} chapter {name!r}; chapters: {listing}")
    return hits[0]


def read_notebook(path: str | Path):
    """A notebook (jupytext text format or .ipynb) as an nbformat NotebookNode."""
    import jupytext

    path = Path(path)
    if path.suffix != ".md":
        return jupytext.read(str(path))
    text = _complete_kernelspec(path.read_text(encoding="utf-8"))
    # MyST even when the header omits the extension jupytext uses to detect it
    return jupytext.reads(text, fmt="md:myst" if "```{code-cell}" in text else "md")


def _complete_kernelspec(text: str) -> str:
    """Add the ``display_name``/``language`` nbformat requires to a bare ``kernelspec``."""
    import yaml

    if not text.startswith("---\n"):
        return text
    end = text.find("\n---", 4)
    if end < 0:
        return text
    header = yaml.safe_load(text[4:end]) or {}
    spec = header.get("kernelspec")
    if not isinstance(spec, dict) or {"display_name", "language"} <= set(spec):
        return text
    spec.setdefault("display_name", "Python 3")
    spec.setdefault("language", "python")
    return "---\n" + yaml.safe_dump(header, sort_keys=False) + text[end + 1 :]


def notebook_parameters(path: str | Path) -> dict[str, object]:
    """Names assigned in the cell tagged ``parameters`` and their literal defaults.

    Non-literal defaults map to None. A notebook without such a cell has no parameters.
    """
    nb = read_notebook(path)
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            params: dict[str, object] = {}
            for node in ast.parse(cell.source).body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else ([node.target] if isinstance(node, ast.AnnAssign) else [])
                )
                for target in targets:
                    if isinstance(target, ast.Name):
                        try:
                            params[target.id] = ast.literal_eval(node.value)
                        except (ValueError, TypeError, SyntaxError):
                            params[target.id] = None
            return params
    return {}


def chapter_parameter_names(chapter: ChapterSource) -> list[str]:
    """Valid parameter names for a chapter (common ∪ declared extras ∪ parameters cell)."""
    from moralkit.profiles import valid_parameter_names

    return valid_parameter_names(chapter.chapter_id, notebook_parameters(chapter.path))


def parse_cli_value(text: str) -> object:
    """A ``-p NAME VALUE`` value: int, float, bool, None, JSON list, or a comma list of those.

    Anything else stays a string (e.g. ``gemma-3-270m``, ``all``, ``every:3``).
    """
    raw = text.strip()
    low = raw.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    if raw.startswith("[") and raw.endswith("]"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raw = raw[1:-1]
    if "," in raw:
        return [parse_cli_value(x) for x in raw.split(",") if x.strip()]
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


# ---------------------------------------------------------------------- execution
@contextmanager
def _environment(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute_chapter(
    chapter: ChapterSource,
    notebook_path: str | Path,
    output_dir: str | Path,
    profile: str,
    parameters: Mapping[str, object] | None = None,
    cwd: str | Path | None = None,
    kernel_name: str = "python3",
) -> ChapterRun:
    """Execute one chapter with papermill; write the executed notebook only if it succeeds.

    ``output_dir`` becomes ``MORALKIT_OUTPUT_DIR`` (tables, figures, provenance.json);
    ``cwd`` (default: the notebook's folder) is where the kernel runs, so the download links a
    chapter prints are relative to the executed notebook. Unknown parameter names are rejected.
    The executed notebook is written even when a cell fails; the failing cell and its
    traceback are returned in ``ChapterRun.error``. Writes ``run.json`` (status, timing) into
    ``output_dir``.
    """
    import papermill as pm

    from moralkit.profiles import check_parameter_names, get_profile

    parameters = dict(parameters or {})
    get_profile(profile)  # unknown profile: fail before starting a kernel
    check_parameter_names(chapter.chapter_id, parameters, notebook_parameters(chapter.path))
    notebook_path = Path(notebook_path).resolve()
    output_dir = Path(output_dir).resolve()
    cwd = Path(cwd or notebook_path.parent).resolve()
    if output_dir.exists():
        shutil.rmtree(output_dir)  # stale figures must not survive into a new page
    output_dir.mkdir(parents=True)
    cwd.mkdir(parents=True, exist_ok=True)
    notebook_path.parent.mkdir(parents=True, exist_ok=True)
    nb = read_notebook(chapter.path)
    nb.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": "Python 3",
        "language": "python",
    }
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    t0 = time.perf_counter()
    error = ""
    with _environment(
        MORALKIT_OUTPUT_DIR=str(output_dir),
        MORALKIT_NOTEBOOK_SOURCE=str(chapter.path.resolve()),
        MORALKIT_PROFILE=profile,
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        # progress bars are for interactive use; in an executed page they are noise, and
        # tqdm.auto's "IProgress not found" warning (no ipywidgets) with them
        TQDM_DISABLE="1",
        PYTHONWARNINGS=",".join(
            x for x in (os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found") if x
        ),
    ):
        try:
            pm.execute_notebook(
                nb,
                str(notebook_path),
                parameters={"profile": profile, **parameters},
                cwd=str(cwd),
                kernel_name=kernel_name,
                progress_bar=False,
            )
        except pm.PapermillExecutionError as exc:
            error = _describe_failure(exc)
        except Exception as exc:  # kernel died, unreadable notebook...: same treatment
            error = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - t0
    ok = not error
    write_json(
        {
            "chapter": chapter.chapter_id,
            "title": chapter.title,
            "profile": profile,
            "parameters": to_jsonable(parameters),
            "status": "ok" if ok else "failed",
            "started": started,
            "wall_time_s": round(wall, 1),
            "source_sha": sha256_of(chapter.path)[:16],
            "error": error,
        },
        output_dir / RUN_RECORD,
    )
    return ChapterRun(chapter, ok, notebook_path, output_dir, wall, error)


def tidy_executed_notebook(notebook_path: str | Path) -> None:
    """Prepare an executed chapter for the book: figure cells, then progress-bar output."""
    prepare_figure_cells(notebook_path)
    strip_progress_bars(notebook_path)


_PROGRESS_RE = re.compile(r"\d+%\|.*\|\s*\d+/\d+")


def strip_progress_bars(notebook_path: str | Path) -> int:
    """Drop tqdm progress bars from stderr outputs, keeping any other text (warnings).

    Diagnostics pass ``disable=`` to tqdm explicitly, so ``TQDM_DISABLE`` cannot silence
    them; in a static page their frames are noise. Returns the number of outputs changed.
    """
    import nbformat

    path = Path(notebook_path)
    nb = nbformat.read(path, as_version=4)
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                segments = [x for x in re.split(r"[\r\n]", text) if x.strip()]
                lines = [x for x in segments if not _PROGRESS_RE.search(x)]
                if not lines:  # only bars, or the blank line tqdm leaves when it clears
                    changed += 1
                    continue
                if len(lines) < len(segments):
                    changed += 1
                    output["text"] = "\n".join(lines) + "\n"
            kept.append(output)
        cell.outputs = kept
    if changed:
        with atomic_path(path, suffix=".ipynb") as tmp:
            nbformat.write(nb, tmp)
    return changed


def _printed_text_as_figure(cell) -> int:
    """Turn a figure cell's stdout into one display output (myst-nb figures only wrap those)."""
    import nbformat

    streams = [o for o in cell.outputs if o.get("output_type") == "stream" and o.name == "stdout"]
    if not streams or any(o.get("output_type") == "display_data" for o in cell.outputs):
        return 0
    text = "".join("".join(o.text) for o in streams).strip()
    others = [o for o in cell.outputs if o not in streams]
    shown = nbformat.v4.new_output("display_data", data={"text/plain": text})
    cell.outputs = [shown, *others]
    return 1


def prepare_figure_cells(notebook_path: str | Path) -> int:
    """Make every ``mystnb: figure`` cell hold exactly one image, captioned with its data link.

    myst-nb wraps *every* display output of such a cell in a numbered figure with the cell's
    name, so a second output (the "Figure data" CSV link, a table, a second image) becomes a
    duplicate figure with a duplicate label. Here the CSV link moves into the caption, a
    second image goes to a new output-only cell named ``<name>-2`` (and so on), and other
    outputs to an output-only cell after the figures. Returns the number of cells changed.
    """
    import nbformat

    from moralkit.chapter import FIGURE_DATA_KEY

    path = Path(notebook_path)
    nb = nbformat.read(path, as_version=4)
    cells, changed = [], 0
    for cell in nb.cells:
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if cell.cell_type != "code" or not figure:
            cells.append(cell)
            continue
        images: list[list] = []  # [image output, data links...]
        extras = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if output.get("metadata", {}).get(FIGURE_DATA_KEY) and images:
                link = data.get("text/markdown", "")
                images[-1].append(str(link).removeprefix("Figure data: ").strip())
            elif any(str(mime).startswith("image/") for mime in data):
                images.append([output])
            else:
                extras.append(output)
        if not images:
            # the cell printed instead of plotting (e.g. nothing to compare under this
            # profile): show its text as the figure so {numref} references still resolve
            changed += _printed_text_as_figure(cell)
            cells.append(cell)
            continue
        if len(images) == 1 and not extras and len(images[0]) == 1:
            cells.append(cell)
            continue
        changed += 1
        caption = str(figure.get("caption", "")).rstrip()
        for k, (image, *links) in enumerate(images):
            text = f"{caption} Data: {', '.join(links)}." if links else caption
            if k == 0:
                figure["caption"] = text.strip()
                cell.outputs = [image]
                cells.append(cell)
            else:
                extra = nbformat.v4.new_code_cell("", metadata={"tags": ["remove-input"]})
                extra.metadata["mystnb"] = {
                    "figure": {
                        **figure,
                        "name": f"{figure.get('name')}-{k + 1}",
                        "caption": text.strip(),
                    }
                }
                extra.outputs = [image]
                cells.append(extra)
        if extras:
            rest = nbformat.v4.new_code_cell("", metadata={"tags": ["remove-input"]})
            rest.outputs = extras
            cells.append(rest)
    if changed:
        nb.cells = cells
        with atomic_path(path, suffix=".ipynb") as tmp:
            nbformat.write(nb, tmp)
    return changed


def _describe_failure(exc: Exception) -> str:
    source = getattr(exc, "source", "") or ""
    trace = "\n".join(getattr(exc, "traceback", []) or [])
    cell = getattr(exc, "exec_count", None)
    text = (
        f"cell [{cell}] failed:\n{source}\n\n{trace or ''}\n"
        f"{getattr(exc, 'ename', type(exc).__name__)}: {getattr(exc, 'evalue', exc)}"
    )
    return _ANSI_RE.sub("", text)


# ---------------------------------------------------------------------- generated pages
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


def status_markdown(chapters: Sequence[ChapterSource], layout: BookLayout = REPO_BOOK) -> str:
    """The status table: one row per chapter (QuantEcon's execution-statistics idea).

    Links are relative to the book's source folder (the table is included by status.md).
    """
    lines = [
        "| chapter | profile | status | last run (UTC) | wall time | peak memory | device |",
        "|---|---|---|---|---|---|---|",
    ]
    for chapter in chapters:
        info = read_chapter_status(layout.executed_dir / chapter.chapter_id)
        published = (layout.executed_dir / f"{chapter.chapter_id}.ipynb").exists()
        title = chapter.title.replace("|", "\\|")
        name = f"[{title}](_executed/{chapter.chapter_id}.ipynb)" if published else title
        if not info:
            lines.append(f"| {name} | | not run | | | | |")
            continue
        status = info.get("status", "?")
        if not published and status == "ok":
            status = "not in this book"
        elif status == "ok" and info.get("source_sha") != sha256_of(chapter.path)[:16]:
            status = "ok (source changed since)"
        mem = info.get("peak_memory_mb")
        lines.append(
            f"| {name} | {info.get('profile', '')} | {status} | {info.get('started', '')} | "
            f"{_duration(info.get('wall_time_s'))} | {f'{mem:.0f} MiB' if mem else ''} | "
            f"{info.get('device') or ''} |"
        )
    return "\n".join(lines) + "\n"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def claims_markdown(layout: BookLayout = REPO_BOOK) -> str:
    """The claims table from claims.yaml and every published chapter's claims.json."""
    from moralkit.claims import claims_table, read_measurements

    executed = layout.executed_dir
    files = [
        f
        for f in sorted(executed.glob("*/claims.json"))
        if (executed / f"{f.parent.name}.ipynb").exists()
    ]
    table = claims_table(read_measurements(files))
    lines = ["| claim | paper | measured | verdict | why |", "|---|---|---|---|---|"]
    for row in table.to_dict("records"):
        chapter = str(row["chapter"])
        where = f"ch. {chapter.split('_', 1)[0]}" if chapter else "—"
        if chapter and (executed / f"{chapter}.ipynb").exists():
            where = f"[{where}](_executed/{chapter}.ipynb)"
        measured = f"{row['measured']} ({where}, {row['profile']})" if row["measured"] else where
        cells = [row["claim"], row["paper_value"], measured, f"**{row['verdict']}**", row["why"]]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
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


# ---------------------------------------------------------------------- book
def prune_executed(
    chapters: Sequence[ChapterSource], profile: str, layout: BookLayout = REPO_BOOK
) -> list[str]:
    """Unpublish executed pages whose source is gone, that failed, or ran under another profile.

    A book shows one profile. Returns the chapter ids dropped.
    """
    keep = {c.chapter_id for c in chapters}
    dropped = []
    for nb in sorted(layout.executed_dir.glob("*.ipynb")):
        info = read_chapter_status(layout.executed_dir / nb.stem)
        if nb.stem not in keep or info.get("status") != "ok" or info.get("profile") != profile:
            nb.unlink()
            dropped.append(nb.stem)
    for folder in sorted(p for p in layout.executed_dir.glob("*") if p.is_dir()):
        if folder.name not in keep:
            shutil.rmtree(folder)
    return dropped


def ensure_mathjax(layout: BookLayout = REPO_BOOK) -> Path:
    """The vendored MathJax 3 (book/_vendor/mathjax); fetched with ``npm pack`` if missing."""
    target = layout.book_dir / "_vendor" / "mathjax"
    if (target / "tex-mml-chtml.js").exists():
        return target
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"MathJax is missing from {target} and npm is not installed to fetch mathjax@3.2.2"
        )
    tmp = layout.build_dir / ".mathjax"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    subprocess.run([npm, "pack", "mathjax@3.2.2"], cwd=tmp, check=True, capture_output=True)
    subprocess.run(["tar", "xzf", "mathjax-3.2.2.tgz"], cwd=tmp, check=True)
    es5 = tmp / "package" / "es5"
    staging = tmp / "mathjax"
    staging.mkdir()
    shutil.copy(es5 / "tex-mml-chtml.js", staging)
    shutil.copy(tmp / "package" / "LICENSE", staging)
    for sub in ("output/chtml/fonts/woff-v2", "input/tex/extensions"):
        shutil.copytree(es5 / sub, staging / sub)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    shutil.rmtree(tmp, ignore_errors=True)
    return target


def run_jupyter_book(layout: BookLayout = REPO_BOOK, strict: bool = True) -> Path:
    """``jupyter-book build book/`` with the root _config.yml and _toc.yml; returns the html dir.

    ``strict`` turns warnings into errors (``-W -n --keep-going``).
    """
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(exe) if exe.exists() else "jupyter-book",
        "build",
        str(layout.book_dir),
        "--config",
        str(layout.config),
        "--toc",
        str(layout.toc),
        "--path-output",
        str(layout.root),
        "--builder",
        "html",
        "--all",
    ]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    result = subprocess.run(cmd, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {result.returncode}); see above")
    return layout.html_dir


def unpublish_failed(run: ChapterRun, layout: BookLayout = REPO_BOOK) -> None:
    """Move a failed chapter's executed notebook out of the book to ``_build/failed/``."""
    if run.notebook.exists():
        failed = layout.build_dir / "failed" / run.notebook.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run.notebook), failed)
        run.notebook = failed


def build_book(
    profile: str = "quick",
    only: Iterable[str] | None = None,
    keep_going: bool = False,
    strict: bool = True,
    layout: BookLayout = REPO_BOOK,
    notebook_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Execute chapters (all, or ``only``) under ``profile``, write status/claims, build the site.

    Stops at the first failing chapter unless ``keep_going`` (then runs the rest, and still
    fails before the site is built). Returns the HTML folder.
    """
    from moralkit.profiles import get_profile

    get_profile(profile)
    chapters = list_chapters(notebook_dir)
    if not chapters:
        raise ChapterFailed(f"no chapter notebooks (NN_name.md) in {notebook_dir or NOTEBOOK_DIR}")
    selected = [find_chapter(x, chapters) for x in only] if only else chapters
    ensure_mathjax(layout)
    layout.executed_dir.mkdir(parents=True, exist_ok=True)
    failures: list[ChapterRun] = []
    t0 = time.perf_counter()
    for chapter in selected:
        log(f"[moralkit book] executing {chapter.chapter_id} (profile {profile}) ...")
        run = execute_chapter(
            chapter,
            layout.executed_dir / f"{chapter.chapter_id}.ipynb",
            layout.executed_dir / chapter.chapter_id,
            profile,
            cwd=layout.executed_dir,
        )
        log(f"[moralkit book]   {'ok' if run.ok else 'FAILED'} in {run.wall_time_s:.0f} s")
        if run.ok:
            tidy_executed_notebook(run.notebook)
        else:
            unpublish_failed(run, layout)
            log(f"[moralkit book] {chapter.chapter_id} failed (executed notebook: {run.notebook})")
            log(run.error)
            failures.append(run)
            if not keep_going:
                break
    if failures:
        names = ", ".join(r.chapter.chapter_id for r in failures)
        raise ChapterFailed(f"chapter(s) failed: {names}; the book was not built")
    dropped = prune_executed(chapters, profile, layout)
    if dropped:
        log(f"[moralkit book] left out (not run under profile {profile}): {', '.join(dropped)}")
    write_generated_pages(chapters, profile, layout)
    log(f"[moralkit book] notebooks done in {time.perf_counter() - t0:.0f} s; building the site")
    html = run_jupyter_book(layout, strict=strict)
    log(f"[moralkit book] site: {html / 'index.html'} ({time.perf_counter() - t0:.0f} s in all)")
    return html


# ---------------------------------------------------------------------- checking the site
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The headless-capable Chromium executable, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium_command(chromium: str | None, profile_dir: str, *args: str) -> list[str]:
    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("no chromium executable found (Debian: apt-get install chromium)")
    return [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args]


def rendered_dom(html: str | Path, wait_ms: int = 8000, chromium: str | None = None) -> str:
    """The page's DOM after its scripts ran (``--dump-dom``): shows whether MathJax typeset."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="moralkit-chromium-") as profile_dir:
        cmd = _chromium_command(
            chromium,
            profile_dir,
            f"--virtual-time-budget={wait_ms}",
            "--dump-dom",
            Path(html).resolve().as_uri(),
        )
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(
            f"chromium --dump-dom failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result.stdout


def screenshot_page(
    html: str | Path,
    png: str | Path,
    width: int = 1280,
    height: int = 2400,
    wait_ms: int = 8000,
    chromium: str | None = None,
) -> Path:
    """Screenshot a built page with headless Chromium (flags from environment-notes).

    ``wait_ms`` of virtual time lets MathJax typeset before the shot.
    """
    import tempfile

    exe = chromium or find_chromium()
    if exe is None:
        raise RuntimeError("no chromium executable found (Debian: apt-get install chromium)")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="moralkit-chromium-") as profile_dir:
        cmd = [
            exe,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile_dir}",
            f"--window-size={width},{height}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={png}",
            Path(html).resolve().as_uri(),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not png.exists():
        raise RuntimeError(
            f"chromium screenshot failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return png
