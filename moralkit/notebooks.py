"""Chapter notebooks as files, and the contract between ``moralkit book``/``run`` and a chapter.

Both sides use this module and neither imports the other: :mod:`moralkit.book` executes a
chapter in a kernel with the environment variables named here, and
:class:`moralkit.chapter.Chapter` reads them inside that kernel.
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jupytext
import yaml

from moralkit.paths import CACHE_ENV, MIRROR_ENV

#: where a chapter writes its tables, figures, claims.json and provenance.json
OUTPUT_DIR_ENV = "MORALKIT_OUTPUT_DIR"
#: the jupytext source of the chapter being executed (its parameters cell names the extras)
NOTEBOOK_SOURCE_ENV = "MORALKIT_NOTEBOOK_SOURCE"
#: JSON of the parameters ``moralkit run -p`` set, applied even when the notebook's parameters
#: cell does not name them (dtype, template, device...)
PARAMETERS_ENV = "MORALKIT_PARAMETERS"
#: the file that marks a folder as one moralkit wrote (and may therefore clear)
OUTPUT_MARKER = ".moralkit-output"
#: output-metadata flag on the "Figure data: <csv>" link that follows a saved figure
FIGURE_DATA_KEY = "moralkit_figure_data"
#: environment variables holding paths: made absolute before a kernel runs in another folder
PATH_VARIABLES = (
    MIRROR_ENV,
    CACHE_ENV,
    "MORALKIT_PROFILES",
    "MORALKIT_NOTEBOOK_DIR",
)


def read_notebook(path: str | Path):
    """A notebook (jupytext text format or .ipynb) as an nbformat NotebookNode."""
    path = Path(path)
    if path.suffix != ".md":
        return jupytext.read(str(path))
    text = _complete_kernelspec(path.read_text(encoding="utf-8"))
    # MyST even when the header omits the extension jupytext uses to detect it
    return jupytext.reads(text, fmt="md:myst" if "```{code-cell}" in text else "md")


def _complete_kernelspec(text: str) -> str:
    """Add the ``display_name``/``language`` nbformat requires to a bare ``kernelspec``."""
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
    for cell in read_notebook(path).cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return _assignments(cell.source)
    return {}


def _assignments(source: str) -> dict[str, object]:
    params: dict[str, object] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                try:
                    params[target.id] = ast.literal_eval(node.value)
                except (ValueError, TypeError, SyntaxError):
                    params[target.id] = None
    return params


def notebook_source_path(
    chapter_id: str, repo_root: Path, cwd: str | Path | None = None
) -> Path | None:
    """The notebook a chapter kernel runs, so its ``parameters`` cell can be read.

    In this order: ``$MORALKIT_NOTEBOOK_SOURCE`` (set by ``moralkit run``/``book`` for the file
    they execute, a copy outside the repository included), ``<cwd>/<chapter_id>.md`` or
    ``.ipynb`` (Jupyter starts a kernel in its notebook's folder, so a forked copy opened there
    is read, not the repository's), then the repository's ``notebooks/<chapter_id>.md``.
    None when none exists.
    """
    env = os.environ.get(NOTEBOOK_SOURCE_ENV)
    if env and Path(env).exists() and Path(env).stem == chapter_id:
        return Path(env)
    folder = Path.cwd() if cwd is None else Path(cwd)
    candidates = [folder / f"{chapter_id}{ext}" for ext in (".md", ".ipynb")]
    candidates.append(Path(repo_root) / "notebooks" / f"{chapter_id}.md")
    return next((path for path in candidates if path.is_file()), None)


def passed_parameters() -> dict[str, Any]:
    """The parameters ``moralkit run``/``book`` passed to this kernel (``$MORALKIT_PARAMETERS``)."""
    text = os.environ.get(PARAMETERS_ENV)
    if not text:
        return {}
    values = json.loads(text)
    if not isinstance(values, dict):
        raise ValueError(f"${PARAMETERS_ENV} must hold a JSON object, got {text[:80]!r}")
    return values


def absolute_path_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The :data:`PATH_VARIABLES` that are set, as absolute paths (``~`` expanded).

    A kernel runs in the executed notebook's folder, so ``MORALKIT_DATA_MIRROR=../shared/data``
    must be resolved against the folder the command started in.
    """
    environ = os.environ if environ is None else environ
    return {
        name: str(Path(environ[name]).expanduser().resolve())
        for name in PATH_VARIABLES
        if environ.get(name)
    }
