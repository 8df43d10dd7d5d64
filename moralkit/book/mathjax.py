"""The vendored MathJax 3 the book serves offline (book/_vendor/mathjax)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from moralkit.book.layout import REPO_BOOK, BookLayout


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
