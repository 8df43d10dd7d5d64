"""Chapter.start reading a notebook's namespace, layer parameters resolved once per model, and
the chapter package split by job behind the Chapter facade."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from moralkit.chapter import Backends, Chapter
from moralkit.layers import LayerSpec
from moralkit.notebooks import NOTEBOOK_SOURCE_ENV, PARAMETERS_ENV, read_notebook
from moralkit.parameters import ParameterError
from moralkit.profiles import get_profile
from moralkit.provenance import REPO_ROOT
from moralkit.sae.config import PRESETS, SAEPreset

CHAPTER_02 = REPO_ROOT / "notebooks" / "02_categorical_indifference.md"


@pytest.fixture(autouse=True)
def out(tmp_path, monkeypatch):
    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(tmp_path / "out"))
    for name in ("MORALKIT_PROFILE", NOTEBOOK_SOURCE_ENV, PARAMETERS_ENV):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "out"


def parameters_cell(path: Path) -> str:
    """The source of a notebook's ``parameters`` cell."""
    for cell in read_notebook(path).cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    raise AssertionError(f"{path} has no parameters cell")


def run_cells(*sources: str) -> dict:
    """A kernel's namespace after running ``sources`` in order (as papermill does)."""
    namespace: dict = {}
    for source in sources:
        exec(source, namespace)
    return namespace


def notebook(folder: Path, chapter_id: str, cell: str) -> Path:
    path = folder / f"{chapter_id}.md"
    path.write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\n"
        f"kernelspec:\n  name: python3\n---\n\n# {chapter_id}\n\n```{{code-cell}} ipython3\n"
        f":tags: [parameters]\n\n{cell}\n```\n",
        encoding="utf-8",
    )
    return path


# ---------------------------------------------------------------------- the namespace
def test_start_reads_every_name_of_the_parameters_cell_from_the_namespace():
    namespace = run_cells(parameters_cell(CHAPTER_02))
    assert set(namespace) > {"profile", "layers", "n_permutations"}
    namespace.update(profile="tiny", layers="0,-1", n_permutations=7, dtype="bfloat16")
    ch = Chapter.start("02_categorical_indifference", namespace)
    assert ch.params["profile"] == "tiny"
    assert ch.params["layers"] == LayerSpec.parse("0,-1")  # parsed once, at start
    assert ch.params["n_permutations"] == 7
    # dtype is no name of chapter 02's cell: a namespace variable of that name is not read
    assert ch.params["dtype"] == "float32"
    assert ch.params["seed"] == 42  # None in the cell: the profile's value


def test_papermill_injected_values_are_the_values_read():
    injected = 'profile = "tiny"\nlayers = "0,15,-1"\nn_bootstrap = 11\n'  # as papermill writes
    namespace = run_cells(parameters_cell(CHAPTER_02), injected)
    ch = Chapter.start("02_categorical_indifference", namespace)
    assert ch.params["profile"] == "tiny" and ch.params["n_bootstrap"] == 11
    assert ch.layers("gemma-3-270m") == (0, 15, 17)


def test_a_cell_name_missing_from_the_namespace_is_an_error():
    namespace = run_cells(parameters_cell(CHAPTER_02))
    del namespace["n_bootstrap"]
    with pytest.raises(NameError, match=r"\['n_bootstrap'\].*run the parameters cell"):
        Chapter.start("02_categorical_indifference", namespace)


def test_unknown_names_are_still_refused(monkeypatch):
    namespace = run_cells(parameters_cell(CHAPTER_02))
    monkeypatch.setenv(PARAMETERS_ENV, json.dumps({"n_permutation": 5}))  # moralkit run -p
    with pytest.raises(ValueError, match=r"unknown parameter.*'n_permutation'.*valid:"):
        Chapter.start("02_categorical_indifference", namespace)
    monkeypatch.delenv(PARAMETERS_ENV)
    with pytest.raises(ValueError, match=r"unknown parameter.*'windw'"):
        Chapter.start("02_categorical_indifference", namespace, windw=3)


def test_run_parameters_and_keywords_beat_the_namespace(monkeypatch):
    namespace = run_cells(parameters_cell(CHAPTER_02), 'profile = "tiny"\nseed = 3\n')
    monkeypatch.setenv(PARAMETERS_ENV, json.dumps({"template": "Q: {action}", "seed": 5}))
    ch = Chapter.start("02_categorical_indifference", namespace)
    assert ch.params["template"] == "Q: {action}"  # not in the cell: reaches it from the run
    assert ch.params["seed"] == 3  # the cell (papermill injected the same -p values) wins
    assert Chapter.start("02_categorical_indifference", namespace, seed=9).params["seed"] == 9


def test_a_forked_notebook_outside_the_repository_is_read_from_the_kernel_folder(
    tmp_path, monkeypatch
):
    """A copy opened in Jupyter runs in its own folder: its cell, not the repository's, counts."""
    cell = 'profile = "tiny"\nlayers = None\nwindow = None\n'  # no n_bootstrap, a new window
    notebook(tmp_path, "02_categorical_indifference", cell)
    monkeypatch.chdir(tmp_path)
    namespace = run_cells(cell, "layers = [0, -1]\nwindow = 4\n")
    ch = Chapter.start("02_categorical_indifference", namespace)
    assert ch.params["window"] == 4 and ch.params["layers"] == LayerSpec.parse("0,-1")
    tiny = get_profile("tiny").chapter_values("02_categorical_indifference")
    assert ch.params["n_bootstrap"] == tiny["n_bootstrap"]  # not in the fork's cell


def test_moralkit_run_names_the_notebook_it_executes(tmp_path, monkeypatch):
    source = notebook(tmp_path, "07_custom", "profile = 'quick'\nwindow = None\n")
    monkeypatch.setenv(NOTEBOOK_SOURCE_ENV, str(source))
    ch = Chapter.start("07_custom", {"profile": "quick", "window": 5})
    assert ch.params["window"] == 5


def test_without_a_notebook_the_declared_names_are_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a script: no notebook of this id anywhere
    ch = Chapter.start("99_script", {"profile": "tiny", "seed": 3, "layers": "0", "x": 1})
    assert ch.params["seed"] == 3 and ch.params["layers"] == LayerSpec.parse("0")
    assert "x" not in ch.params  # not a parameter of the chapter: an ordinary variable


# ---------------------------------------------------------------------- typed values
def test_sae_preset_is_typed_where_it_enters():
    ch = Chapter.start("07_sae_surgery", profile="tiny")
    preset = ch.params["sae_preset"]
    assert isinstance(preset, SAEPreset) and preset == "tiny"
    assert preset.train == PRESETS["tiny"]
    with pytest.raises(ParameterError, match=r"sae_preset='huge'.*quick"):
        Chapter.start("07_sae_surgery", profile="tiny", sae_preset="huge")


class CountingBackends:
    """A model depth and an extractor that count their calls."""

    def __init__(self, depth: int = 12):
        self.n_layers = depth
        self.depth_calls: list[str] = []
        self.layers_seen: list = []

    def backends(self) -> Backends:
        return Backends(records=self.records, depth=self.depth, extract=self.extract)

    def records(self, ground_truth, sample_scale=1.0, seed=42):
        return Texts(["a", "b"])

    def depth(self, model_name):
        self.depth_calls.append(model_name)
        return self.n_layers

    def extract(self, model, texts, layers, **settings):
        from moralkit.activation_set import ActivationSet

        self.layers_seen.append(layers)
        arrays = {"mean": np.zeros((len(layers), len(texts), 2), np.float32)}
        return ActivationSet(arrays, tuple(layers), self.n_layers, model, {"cache_key": "k"})


class Texts(list):
    provenance: dict = {}

    @property
    def texts(self):
        return list(self)


def test_a_layer_spec_is_resolved_once_per_model():
    fake = CountingBackends()
    ch = Chapter.start(
        "02_categorical_indifference", profile="tiny", layers="every:5", backends=fake.backends()
    )
    records = ch.records()
    for _ in range(2):
        ch.activations("m1", records)
        ch.activations("m2", records)
    assert ch.layers("m1") == (0, 5, 10, 11)
    assert fake.depth_calls == ["m1", "m2"]  # one depth, one resolution per model
    assert fake.layers_seen == [(0, 5, 10, 11)] * 4  # the extractor gets integers only


def test_any_layer_parameter_resolves_through_the_chapter():
    ch = Chapter.start("08_steering_evaluation", profile="quick", steer_layers="-1,10")
    assert ch.layers("smollm2-135m", "steer_layers") == (10, 29)
    with pytest.raises(ValueError, match="'n_ethics' is not a layer parameter.*steer_layers"):
        ch.layers("smollm2-135m", "n_ethics")
    ch = Chapter.start("07_sae_surgery", profile="quick", layers="0,8,10,12", sae_layers="8,10")
    assert ch.layers("smollm2-135m", among="sae_layers") == (8, 10)


def test_a_layers_override_is_indices_or_a_spec_never_text():
    fake = CountingBackends()
    ch = Chapter.start("02_categorical_indifference", profile="tiny", backends=fake.backends())
    records = ch.records()
    assert ch.activations("m1", records, layers=[3, 1]).layers == (1, 3)
    assert ch.activations("m1", records, layers=LayerSpec.parse("-1")).layers == (11,)
    with pytest.raises(TypeError, match="resolved layer indices"):
        ch.activations("m1", records, layers="0,-1")
    with pytest.raises(ValueError, match="negative"):
        ch.activations("m1", records, layers=[-1])


# ---------------------------------------------------------------------- the package
def test_the_facade_keeps_what_notebooks_call():
    for name in ("start", "records", "activations", "layers", "load_model", "config",
                 "save_table", "save_result", "save_figure", "record_claim", "record_claims",
                 "provenance", "finish", "models"):  # fmt: skip
        assert hasattr(Chapter, name), name


def test_the_chapter_package_is_split_by_job():
    package = REPO_ROOT / "moralkit" / "chapter"
    modules = sorted(p.name for p in package.glob("*.py"))
    assert modules == [
        "__init__.py",
        "facade.py",
        "inputs.py",
        "outputs.py",
        "parameters.py",
        "provenance.py",
    ]
    for path in package.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 450, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno - node.lineno < 60, f"{path.name}: {node.name}"


def test_no_notebook_echoes_its_parameters():
    """Done criterion of issue 17: no `x=x,` line in any chapter's first code cell."""
    for path in sorted((REPO_ROOT / "notebooks").glob("*.md")):
        cells = [c for c in read_notebook(path).cells if c.cell_type == "code"]
        start = next(c for c in cells if "Chapter.start(" in c.source)
        assert "globals()" in start.source, path.name
        for line in start.source.splitlines():
            name, _, value = line.strip().rstrip(",").partition("=")
            assert not (value and name == value), f"{path.name}: {line}"
