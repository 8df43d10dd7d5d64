"""Preparing an executed chapter notebook for the book: figure cells and progress bars."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from moralkit.io import atomic_path
from moralkit.notebooks import FIGURE_DATA_KEY


def tidy_executed_notebook(notebook_path: str | Path) -> None:
    """Prepare an executed chapter for the book: figure cells, then progress-bar output."""
    prepare_figure_cells(notebook_path)
    strip_progress_bars(notebook_path)


_PROGRESS_RE = re.compile(r"\d+%\|.*\|\s*\d+/\d+")


_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def strip_progress_bars(notebook_path: str | Path) -> int:
    """Drop tqdm progress bars (stderr text and notebook widgets), keeping other text.

    Diagnostics pass ``disable=`` to tqdm explicitly, so ``TQDM_DISABLE`` cannot silence
    them; in a static page their frames are noise. The widgets' saved state goes too: myst-nb
    would otherwise load require.js and the Jupyter widgets manager from public CDNs into the
    page, which then makes third-party requests and breaks offline. Returns the number of
    outputs (and widget states) removed or changed.
    """
    path = Path(notebook_path)
    nb = nbformat.read(path, as_version=4)
    changed = int(nb.metadata.pop("widgets", None) is not None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            if _WIDGET_MIME in output.get("data", {}):
                # tqdm.notebook bars are widgets; a static page has no widget state to show
                changed += 1
                continue
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
    path = Path(notebook_path)
    nb = nbformat.read(path, as_version=4)
    cells, changed = [], 0
    for cell in nb.cells:
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if cell.cell_type != "code" or not figure:
            cells.append(cell)
            continue
        images, extras = _sort_outputs(cell)
        if not images:
            # the cell printed instead of plotting (e.g. nothing to compare under this
            # profile): show its text as the figure so {numref} references still resolve
            changed += _printed_text_as_figure(cell)
            cells.append(cell)
        elif len(images) == 1 and not extras and len(images[0]) == 1:
            cells.append(cell)
        else:
            changed += 1
            cells.extend(_one_image_per_cell(cell, figure, images, extras))
    if changed:
        nb.cells = cells
        with atomic_path(path, suffix=".ipynb") as tmp:
            nbformat.write(nb, tmp)
    return changed


def _sort_outputs(cell) -> tuple[list[list], list]:
    """``([image output, data links...] per image, other outputs)`` of a figure cell."""
    images: list[list] = []
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
    return images, extras


def _one_image_per_cell(cell, figure: dict, images: list[list], extras: list) -> list:
    """The figure cell with its first image, a cell per further image, then the rest."""
    cells = []
    caption = str(figure.get("caption", "")).rstrip()
    for k, (image, *links) in enumerate(images):
        text = f"{caption} Data: {', '.join(links)}." if links else caption
        if k == 0:
            figure["caption"] = text.strip()
            cell.outputs = [image]
            cells.append(cell)
            continue
        extra = nbformat.v4.new_code_cell("", metadata={"tags": ["remove-input"]})
        extra.metadata["mystnb"] = {
            "figure": {**figure, "name": f"{figure.get('name')}-{k + 1}", "caption": text.strip()}
        }
        extra.outputs = [image]
        cells.append(extra)
    if extras:
        rest = nbformat.v4.new_code_cell("", metadata={"tags": ["remove-input"]})
        rest.outputs = extras
        cells.append(rest)
    return cells
