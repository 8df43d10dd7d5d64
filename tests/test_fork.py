"""``moralkit fork``: a chapter as a standalone notebook, and the forked notebook run outside the
repository against an installed (not editable) moralkit; the jupytext configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file
from shared_data import SHARED_DATA, needs_mirror

from moralkit.book import find_chapter, list_chapters
from moralkit.book.fork import fork_chapter
from moralkit.cli import main
from moralkit.notebooks import notebook_parameters

REPO = Path(__file__).resolve().parents[1]


def test_fork_writes_a_plain_notebook_and_a_readme(tmp_path, capsys):
    assert main(["fork", "02", str(tmp_path / "class"), "--profile", "tiny"]) == 0
    notebook = tmp_path / "class" / "02_categorical_indifference.ipynb"
    nb = nbformat.read(notebook, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    (params,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert "profile = 'tiny'" in params.source
    assert notebook_parameters(notebook) == notebook_parameters(find_chapter("02").path) | {
        "profile": "tiny"
    }
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "{numref}" not in text and "figure *fig-02-by-depth*" in text
    assert "*Figure fig-02-heatmap.* Cosines between the ten category centres" in text
    readme = (tmp_path / "class" / "README.md").read_text()
    assert "papermill 02_categorical_indifference.ipynb" in readme and "`quick`" in readme
    assert main(["fork", "02", str(tmp_path / "class")]) == 2  # never overwrites silently
    assert "already exist" in capsys.readouterr().err
    assert main(["fork", "02", str(tmp_path / "class"), "--force"]) == 0


def test_every_chapter_forks(tmp_path):
    for chapter in list_chapters():
        fork = fork_chapter(chapter, tmp_path / chapter.number)
        nb = nbformat.read(fork.notebook, as_version=4)
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "```{" not in markdown and "{cite" not in markdown, chapter.chapter_id


def test_keep_outputs_needs_an_executed_copy(tmp_path, capsys):
    missing = tmp_path / "nowhere.ipynb"
    assert main(["fork", "02", str(tmp_path / "f"), "--keep-outputs", str(missing)]) == 2
    assert (
        f"no executed copy of 02_categorical_indifference at {missing}" in capsys.readouterr().err
    )
    executed = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1 + 1", metadata={"tags": ["parameters"]})
    cell.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"})]
    executed.cells = [
        cell,
        nbformat.v4.new_code_cell("x", metadata={"tags": ["injected-parameters"]}),
    ]
    nbformat.write(executed, tmp_path / "ran.ipynb")
    assert (
        main(["fork", "02", str(tmp_path / "f"), "--keep-outputs", str(tmp_path / "ran.ipynb")])
        == 0
    )
    nb = nbformat.read(tmp_path / "f" / "02_categorical_indifference.ipynb", as_version=4)
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "2"  # kept
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_the_chapters_open_as_notebooks_with_the_repository_jupytext_config():
    """jupytext (JupyterLab's contents manager) finds the repository's jupytext.toml for the
    chapters; a chapter read and saved with it keeps every cell, tag and figure caption."""
    config_file = find_jupytext_configuration_file(str(REPO / "notebooks"))
    assert config_file == str(REPO / "jupytext.toml")
    config = load_jupytext_configuration_file(config_file)
    for chapter in list_chapters():
        nb = jupytext.read(chapter.path, fmt="md:myst")
        again = jupytext.reads(jupytext.writes(nb, fmt="md:myst", config=config), fmt="md:myst")
        assert [(c.cell_type, c.source, c.metadata) for c in again.cells] == [
            (c.cell_type, c.source, c.metadata) for c in nb.cells
        ], chapter.chapter_id
        assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


# ------------------------------------------------------------------ outside the repository
@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A Python environment with moralkit installed from a built wheel, not from this checkout
    (its dependencies come from this venv through a path file, whose own path files, among them
    the editable install, are not read)."""
    root = tmp_path_factory.mktemp("installed")
    src = root / "src"
    shutil.copytree(
        REPO / "moralkit", src / "moralkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    (src / "data").mkdir()
    for name in ("pyproject.toml", "README.md", "data/manifest.toml"):
        shutil.copy(REPO / name, src / name)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(root / "wheel"), str(src)], check=True, cwd=root)
    env = root / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(
        subprocess.check_output([str(env / "bin" / "python"), "-c", purelib], text=True).strip()
    )
    (site / "moralkit-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (wheel,) = (root / "wheel").glob("moralkit-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    for data in site.glob("moralkit-*.data/data"):
        shutil.copytree(data, env, dirs_exist_ok=True)  # share/moralkit/manifest.toml
        shutil.rmtree(data.parent)
    return env


def _run(env: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MORALKIT_NOTEBOOK")}
    clean.pop("PYTHONPATH", None)
    clean["MORALKIT_DATA_MIRROR"] = str(
        Path(os.environ.get("MORALKIT_DATA_MIRROR") or SHARED_DATA).resolve()
    )
    return subprocess.run([str(env / "bin" / "python"), *args], cwd=cwd, env=clean, text=True,
                          capture_output=True)  # fmt: skip


@pytest.mark.slow
def test_a_forked_chapter_finds_its_parameters_outside_the_repository(installed, tmp_path):
    """Chapter 04's ``min_cluster_size`` is declared only in its parameters cell: outside the
    repository, the forked notebook in the kernel's folder is what makes it a parameter (run
    from another folder, the value would not be read)."""
    fork = fork_chapter(find_chapter("04"), tmp_path / "class", profile="tiny")
    probe = (
        "import moralkit, nbformat\n"
        "from moralkit.chapter import Chapter\n"
        "print(moralkit.__file__)\n"
        f"nb = nbformat.read({str(fork.notebook)!r}, as_version=4)\n"
        "(cell,) = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]\n"
        "ns = {}\n"
        "exec(cell.source, ns)\n"
        "ns['min_cluster_size'] = 6\n"
        "ch = Chapter.start('04_structural_indifference', ns)\n"
        "print('resolved', ch.params['profile'], ch.params.get('min_cluster_size'))\n"
    )
    inside = _run(installed, tmp_path / "class", "-c", probe)
    assert str(installed) in inside.stdout.splitlines()[0], inside.stderr  # not this checkout
    assert "resolved tiny 6" in inside.stdout, inside.stderr
    elsewhere = _run(installed, tmp_path, "-c", probe)
    assert "resolved tiny None" in elsewhere.stdout, elsewhere.stderr  # the need for the file


@pytest.mark.slow  # chapter 02 on the tiny profile: about a minute
@needs_mirror
def test_a_forked_chapter_runs_with_papermill_outside_the_repository(installed, tmp_path):
    """The README's papermill command, in the fork's folder, with the installed package."""
    fork_chapter(find_chapter("02"), tmp_path / "class", profile="tiny")
    notebook = "02_categorical_indifference.ipynb"
    run = _run(installed, tmp_path / "class", "-m", "papermill", notebook, "executed.ipynb",
               "-p", "n_permutations", "5", "-p", "n_bootstrap", "5")  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "class" / "outputs" / "02_categorical_indifference"
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["profile"] == "tiny" and provenance["params"]["n_permutations"] == 5
    assert (out / "figures" / "virtue_vice_by_depth.png").is_file()
    assert (tmp_path / "class" / "executed.ipynb").is_file()
