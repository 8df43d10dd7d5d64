"""No import climbs the layering: a package imports only from the floors below its own.

The floors are moralkit's pipeline order, documented in the README (Contributing) and in the
book's Methods index. Every ``import`` counts, also one inside a function or under
``TYPE_CHECKING``: a deferred import is still a dependency. Packages that share a floor are
independent of each other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "moralkit"

#: lowest first; "moralkit" is the package root (``__version__``)
FLOORS: tuple[tuple[str, ...], ...] = (
    ("moralkit", "io", "paths", "foundations", "layers", "local_http"),
    ("claims", "provenance", "notebooks", "display", "example_files"),
    ("results", "records", "activation_set"),
    ("data", "models"),  # independent: the cache root both use is in paths
    ("threads",),
    ("activations",),
    ("parameters",),
    ("profiles",),
    ("diagnostics",),
    ("sae",),
    ("steering",),
    ("evaluation",),
    ("neurons", "pruning"),
    ("replication",),
    ("figures",),
    ("chapter",),
    ("book",),
    ("cli", "workflow"),
    ("compute_plan", "rehearsal"),  # the plan reads what the workflow runs; the rehearsal runs it
)


def floor_of(floors: tuple[tuple[str, ...], ...]) -> dict[str, int]:
    return {unit: level for level, units in enumerate(floors) for unit in units}


def unit_of(module: str) -> str:
    """``moralkit.data.fetch`` -> ``data``; ``moralkit`` -> ``moralkit`` (the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path, package: Path) -> str:
    """``<package>/data/fetch.py`` -> ``moralkit.data.fetch``; an ``__init__`` names its package."""
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, package: Path) -> list[tuple[str, int]]:
    """Every moralkit module ``path`` imports, with its line, wherever the import statement is.

    ``from moralkit import x`` names the submodule ``x`` when there is one, else the root.
    """
    module = module_name(path, package).split(".")
    here = module if path.name == "__init__.py" else module[:-1]  # the importing package
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: ``from ..x`` climbs level - 1 packages from here
                anchor = here[: len(here) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == package.name:
                for alias in node.names:
                    sub = package / alias.name
                    is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                    found.append((f"{base}.{alias.name}" if is_module else base, node.lineno))
            else:
                found.append((base, node.lineno))
    return [(name, line) for name, line in found if name.split(".")[0] == package.name]


def climbing_imports(package: Path, floors: tuple[tuple[str, ...], ...]) -> list[str]:
    """``file:line unit (floor) -> unit (floor)`` for every import that is not strictly down,
    plus every unit no floor names."""
    level = floor_of(floors)
    problems = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent)
        source = unit_of(module_name(path, package))
        if source not in level:
            problems.append(f"{rel}: {source!r} is on no floor (add it to FLOORS and the README)")
            continue
        for name, line in imported_modules(path, package):
            target = unit_of(name)
            if target == source:
                continue
            if target not in level:
                problems.append(f"{rel}:{line}: imports {name}, which is on no floor")
            elif level[target] >= level[source]:
                problems.append(
                    f"{rel}:{line}: {source} (floor {level[source]}) imports {name} "
                    f"(floor {level[target]})"
                )
    return problems


def test_no_import_climbs_the_floors():
    assert climbing_imports(PACKAGE, FLOORS) == []


def test_every_floor_names_an_existing_package_or_module():
    for unit in (u for units in FLOORS for u in units if u != "moralkit"):
        assert (PACKAGE / unit).is_dir() or (PACKAGE / f"{unit}.py").is_file(), unit


def test_the_readme_lists_the_same_floors():
    """The Contributing section's table is this list (package root = "moralkit")."""
    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**Floors.**") :]
    table = section[section.index("\n|") : section.index("\n\n", section.index("\n|"))]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", table, flags=re.MULTILINE)
    documented = tuple(
        tuple("moralkit" if u == "package root" else u.strip("`") for u in cell.strip().split(", "))
        for _, cell in rows
    )
    assert [int(n) for n, _ in rows] == list(range(len(FLOORS)))
    assert documented == FLOORS


def write(root: Path, files: dict[str, str]) -> Path:
    package = root / "moralkit"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


@pytest.mark.parametrize(
    "statement",
    [
        "from moralkit.evaluation.schema import load_benchmark\n",
        "def f():\n    from moralkit.evaluation import schema\n",  # deferred: still counts
        "import moralkit.evaluation.schema\n",
        "from moralkit import evaluation\n",
        "from .. import evaluation\n",
        "from ..evaluation.schema import load_benchmark\n",
    ],
)
def test_a_climbing_import_is_reported(tmp_path, statement):
    floors = (("moralkit", "io"), ("data",), ("evaluation",))
    files = {
        "__init__.py": "__version__ = '0'\n",
        "io.py": "",
        "evaluation/__init__.py": "",
        "evaluation/schema.py": "from moralkit.data import benchmarks\n",  # down: fine
        "data/__init__.py": "",
        "data/benchmarks.py": "from moralkit import __version__\nfrom moralkit.io import x\n",
        "data/loaders.py": statement,
    }
    problems = climbing_imports(write(tmp_path, files), floors)
    assert len(problems) == 1 and "data/loaders.py" in problems[0], problems
    assert "data (floor 1) imports moralkit.evaluation" in problems[0]


def test_same_floor_and_unplaced_packages_are_reported(tmp_path):
    floors = (("moralkit",), ("neurons", "pruning"))
    files = {
        "__init__.py": "",
        "neurons/__init__.py": "from moralkit.pruning import masks\n",
        "pruning/__init__.py": "",
        "extra.py": "",
    }
    problems = climbing_imports(write(tmp_path, files), floors)
    assert any("neurons (floor 1) imports moralkit.pruning (floor 1)" in p for p in problems)
    assert any("'extra' is on no floor" in p for p in problems)
