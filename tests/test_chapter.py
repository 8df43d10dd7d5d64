"""The Chapter API: outputs, claims, provenance, and the calls into data and activations."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")  # tests only: no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from moralkit.activation_set import ActivationSet  # noqa: E402
from moralkit.chapter import Backends, Chapter  # noqa: E402
from moralkit.layers import LayerSpec  # noqa: E402
from moralkit.notebooks import OUTPUT_MARKER, PARAMETERS_ENV  # noqa: E402
from moralkit.results import AnalysisResult, ClaimValue  # noqa: E402


@pytest.fixture
def out(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(folder))
    monkeypatch.delenv("MORALKIT_PROFILE", raising=False)
    monkeypatch.delenv("MORALKIT_NOTEBOOK_SOURCE", raising=False)
    monkeypatch.delenv(PARAMETERS_ENV, raising=False)
    return folder


def test_start_resolves_profile_and_output_folder(out):
    ch = Chapter.start("02_categorical_indifference", profile="tiny", layers="0,-1", seed=None)
    assert ch.output_dir == out and out.is_dir()
    assert ch.params["profile"] == "tiny"
    assert ch.params["seed"] == 42  # None takes the profile's value
    assert ch.models == ["smollm2-135m"]
    assert ch.params["layers"] == LayerSpec.parse("0,-1")  # parsed once, at start
    # depth from the model registry (moralkit.models.model_depth): 30 and 18 layers
    assert ch.layers("smollm2-135m") == (0, 29)
    assert ch.layers("gemma-3-270m") == (0, 17)


def test_layers_narrow_by_a_second_layer_parameter(out):
    ch = Chapter.start("05_dimensional_indifference", profile="quick", layers="0,6,12,29")
    assert ch.params["probe_layers"] == LayerSpec("every", step=3)  # quick's chapter value
    assert ch.layers("smollm2-135m", among="probe_layers") == (0, 6, 12, 29)  # every:3 keeps 29
    ch = Chapter.start("05_dimensional_indifference", profile="quick", layers="1,2,4")
    assert ch.layers("smollm2-135m", among="probe_layers") == (1, 2, 4)  # none shared: all
    ch = Chapter.start("05_dimensional_indifference", profile="quick")
    assert ch.layers("smollm2-135m", among="probe_layers") == (
        0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29
    )  # fmt: skip


def test_negative_layers_from_the_api_and_the_profile(out):
    """The API accepts what the profile accepts: negative layers count from the end."""
    ch = Chapter.start("02_categorical_indifference", profile="tiny", layers=[-1, -2])
    assert ch.layers("smollm2-135m") == (28, 29)
    ch = Chapter.start("02_categorical_indifference", profile="tiny")  # tiny: "0,15,-1"
    assert ch.layers("gemma-3-270m") == (0, 15, 17)


def test_default_output_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MORALKIT_OUTPUT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    ch = Chapter.start("04_structural_indifference")
    assert ch.output_dir.resolve() == (tmp_path / "outputs" / "04_structural_indifference")
    assert ch.params["profile"] == "quick"


def test_start_rejects_unknown_names(out):
    with pytest.raises(ValueError, match="unknown parameter.*'modle'.*valid:.*model"):
        Chapter.start("02_categorical_indifference", modle="x")


def test_start_accepts_names_from_the_notebook_parameters_cell(out, tmp_path, monkeypatch):
    source = tmp_path / "07_custom.md"
    source.write_text(
        "---\njupytext:\n  text_representation:\n    format_name: myst\n"
        "kernelspec:\n  name: python3\n---\n\n# 07\n\n```{code-cell} ipython3\n"
        ":tags: [parameters]\n\nprofile = 'quick'\nwindow = None\n```\n"
    )
    monkeypatch.setenv("MORALKIT_NOTEBOOK_SOURCE", str(source))
    ch = Chapter.start("07_custom", window=5)
    assert ch.params["window"] == 5
    with pytest.raises(ValueError, match="windw"):
        Chapter.start("07_custom", windw=5)


def test_save_table_and_figure(out):
    ch = Chapter.start("01_demo")
    table = pd.DataFrame({"layer": [0, 1], "value": [0.5, 0.25]})
    path = ch.save_table(table, "summary")
    assert path == out / "tables" / "summary.csv"
    assert pd.read_csv(path).equals(table)

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = ch.save_figure(fig, "curve.png", data=table)
    assert png == out / "figures" / "curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(out / "figures" / "curve.csv").equals(table)
    assert not plt.fignum_exists(fig.number)  # closed: the inline backend cannot show it twice
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temp files


def test_save_rejects_bad_names(out):
    ch = Chapter.start("01_demo")
    with pytest.raises(ValueError, match="invalid output name"):
        ch.save_table(pd.DataFrame({"a": [1]}), ".hidden")


def test_record_claim_writes_claims_json(out):
    ch = Chapter.start("05_dimensional_indifference", profile="tiny")
    ch.record_claim("best_probe_r2", np.float64(0.12), note="best layer 7", layer=7)
    data = json.loads((out / "claims.json").read_text())
    entry = data["best_probe_r2"]
    assert entry["value"] == pytest.approx(0.12)
    assert entry["layer"] == 7 and entry["note"] == "best layer 7"
    assert entry["profile"] == "tiny" and entry["ground_truth"] == "moralstrength"
    assert entry["chapter"] == "05_dimensional_indifference"
    with pytest.raises(ValueError, match="unknown claim id 'best_r2'"):
        ch.record_claim("best_r2", 0.1)


class FakeBackends:
    """Stand-ins for diagnostic_records / model_depth / cached_activations that log calls."""

    def __init__(self, depth: int = 12):
        self.n_layers = depth
        self.calls: dict[str, list] = {"records": [], "activations": []}

    def backends(self) -> Backends:
        return Backends(records=self.records, depth=self.depth, extract=self.extract)

    def records(self, ground_truth, sample_scale=1.0, seed=42):
        self.calls["records"].append((ground_truth, sample_scale, seed))
        return Records([f"text {i}" for i in range(4)])

    def depth(self, model_name):
        return self.n_layers

    def extract(self, model, texts, layers, random_init=False, seed=0, **settings):
        self.calls["activations"].append(dict(model=model, layers=layers, **settings))
        poolings = settings.get("poolings", ("mean",))
        arrays = {p: np.zeros((len(layers), len(texts), 3), np.float32) for p in poolings}
        meta = {
            "model_id": f"hub/{model}",
            "revision": "r1",
            "weights_hash": "f" * 64,
            "cache_key": f"k-{model}-{random_init}",
            "cache_hit": True,
            "dtype": settings.get("dtype"),
        }
        return ActivationSet(arrays, tuple(layers), self.n_layers, f"hub/{model}", meta)


class Records(list):
    """A list of texts with the two attributes Chapter reads."""

    @property
    def texts(self):
        return list(self)

    provenance = {"ground_truth": "moralstrength", "files": {"lexicon.csv": "ab" * 32}}


@pytest.fixture
def fake_backends():
    return FakeBackends()


def test_records_and_activations_are_recorded(out, fake_backends):
    ch = Chapter.start(
        "02_categorical_indifference",
        profile="tiny",
        layers="every:5",
        backends=fake_backends.backends(),
    )
    records = ch.records()
    assert ch.records() is records  # cached per ground truth
    assert fake_backends.calls["records"] == [("moralstrength", 0.15, 42)]
    ch.records(ground_truth="socialchem-subset")
    assert fake_backends.calls["records"][-1][0] == "socialchem-subset"

    acts = ch.activations("smollm2-135m", records)
    call = fake_backends.calls["activations"][0]
    assert call["layers"] == (0, 5, 10, 11)  # every:5 on a 12-layer model, plus the last
    profile = ch.params  # the profile's values reach the extractor as they are
    assert call["poolings"] == tuple(profile["poolings"])
    assert call["template"] == profile["template"] and call["dtype"] == profile["dtype"]
    assert call["device"] == profile["device"]
    assert acts.layers == (0, 5, 10, 11)

    ch.finish()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["models"][0]["model_id"] == "hub/smollm2-135m"
    assert prov["models"][0]["weights_hash"] == "f" * 64
    assert prov["models"][0]["cache_hit"] is True
    assert prov["models"][0]["layers"] == [0, 5, 10, 11]
    data = {d["ground_truth"]: d for d in prov["data"]}
    assert data["moralstrength"]["checksums"] == {"lexicon.csv": "ab" * 32}
    assert data["moralstrength"]["n_records"] == 4


def test_finish_writes_every_provenance_field(out):
    ch = Chapter.start("01_demo", profile="tiny")
    ch.finish()
    prov = json.loads((out / "provenance.json").read_text())
    for key in (
        "chapter",
        "profile",
        "params",
        "models",
        "data",
        "versions",
        "git",
        "device",
        "wall_time_s",
        "peak_memory_mb",
        "started",
        "finished",
        "status",
    ):
        assert key in prov, key
    assert prov["params"]["sample_scale"] == 0.15
    assert prov["peak_memory_mb"] > 10
    assert prov["versions"]["torch"] and prov["versions"]["python"].count(".") == 2
    assert prov["device"].startswith("CPU") or prov["device"].startswith("GPU")


def test_cache_writes_tell_a_cold_run_from_a_warm_one(out, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MORALKIT_CACHE", str(cache))
    (cache / "sae").mkdir(parents=True)
    (cache / "sae" / "old.pt").write_bytes(b"x")
    ch = Chapter.start("01_demo", profile="tiny")
    (cache / "inspect-logs").mkdir()
    (cache / "inspect-logs" / "judge.eval").write_bytes(b"log")  # a log, not a cache entry
    assert ch.provenance()["cache_writes"] == 0
    (cache / "generations").mkdir()
    (cache / "generations" / "new.json").write_text("{}")
    (cache / "sae" / "old.pt").write_bytes(b"rewritten")  # not a new entry
    assert ch.provenance()["cache_writes"] == 1


def test_variant_extractions_get_their_own_provenance_entry(out, fake_backends):
    ch = Chapter.start(
        "06_across_models", profile="tiny", layers="0,-1", backends=fake_backends.backends()
    )
    records = ch.records()
    ch.activations("smollm2-135m", records)
    ch.activations("smollm2-135m", records)  # the same extraction: one entry
    ch.activations("smollm2-135m", records, random_init=True, seed=3)
    assert fake_backends.calls["activations"][-1]["layers"] == (0, 11)
    entries = ch.provenance()["models"]
    assert [e["variant"] for e in entries] == ["", "random_init=True, seed=3"]


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    twin_sample_scale: float = 0.5
    prompted_sample_scale: float = 0.5
    system_prompt: str = "default prompt"
    lr: float = 0.1


def test_config_from_parameters(out):
    ch = Chapter.start("06_across_models", profile="tiny", twin_sample_scale=0.2)
    cfg = ch.config(ToyConfig)
    assert cfg.twin_sample_scale == 0.2  # the argument beats the profile's value
    assert cfg.prompted_sample_scale == ch.params["prompted_sample_scale"]  # the profile's
    assert cfg.system_prompt == "default prompt"  # no such parameter: the dataclass default
    assert ch.config(ToyConfig, lr="twin_sample_scale").lr == 0.2  # a mapped name


class ToyResult(AnalysisResult):
    TABLES = ("by_layer", "summary")


def test_save_result_writes_every_table(out):
    ch = Chapter.start("02_categorical_indifference", profile="tiny")
    result = ToyResult(
        {"by_layer": pd.DataFrame({"layer": [0, 1]}), "summary": pd.DataFrame({"n": [2]})}
    )
    paths = ch.save_result(result, prefix="cat")
    assert paths == {
        "by_layer": out / "tables" / "cat_by_layer.csv",
        "summary": out / "tables" / "cat_summary.csv",
    }
    assert pd.read_csv(paths["by_layer"]).equals(result["by_layer"])
    assert ch.save_result(result)["summary"] == out / "tables" / "summary.csv"


def test_record_claims_accepts_one_value_or_a_list(out):
    ch = Chapter.start("05_dimensional_indifference", profile="tiny")
    ch.record_claims(ClaimValue("best_probe_r2", 0.3, "layer 4", {"layer": 4}))
    ch.record_claims(None)
    ch.record_claims([ClaimValue("categorical_indifference", 0.9)])
    data = json.loads((out / "claims.json").read_text())
    assert data["best_probe_r2"]["value"] == 0.3 and data["best_probe_r2"]["layer"] == 4
    assert data["best_probe_r2"]["note"] == "layer 4"
    assert data["categorical_indifference"]["value"] == 0.9


def test_run_parameters_the_notebook_does_not_forward_reach_the_extractor(out, monkeypatch):
    """Table B #2: -p dtype/template/device/poolings reach extraction and the provenance."""
    passed = {"dtype": "bfloat16", "template": "Q: {action}", "device": "cuda:1"}
    monkeypatch.setenv(PARAMETERS_ENV, json.dumps({**passed, "poolings": "last"}))
    fake_backends = FakeBackends(depth=30)
    # the notebook's cell forwards only model and layers, as the chapters do
    ch = Chapter.start(
        "02_categorical_indifference",
        profile="tiny",
        model=None,
        layers=None,
        backends=fake_backends.backends(),
    )
    ch.activations("smollm2-135m", ch.records())
    call = fake_backends.calls["activations"][0]
    assert {k: call[k] for k in passed} == passed
    assert call["poolings"] == ("last", "mean")  # `pooling: mean` is read, so extracted too
    ch.finish()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["params"]["dtype"] == "bfloat16" and prov["params"]["template"] == "Q: {action}"
    assert prov["models"][0]["dtype"] == "bfloat16"  # the value the extractor reports
    assert prov["models"][0]["template"] == "Q: {action}"


def test_start_rejects_bad_values_naming_the_parameter(out):
    from moralkit.parameters import ParameterError

    with pytest.raises(ParameterError, match=r"dtype='foo'.*float32"):
        Chapter.start("02_categorical_indifference", dtype="foo")
    with pytest.raises(ParameterError, match=r"layers=1\.5"):
        Chapter.start("02_categorical_indifference", layers=1.5)


def test_output_folder_is_marked_only_when_moralkit_made_it(tmp_path, monkeypatch):
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(fresh))
    Chapter.start("01_demo")
    assert (fresh / OUTPUT_MARKER).is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(mine))
    Chapter.start("01_demo")
    assert not (mine / OUTPUT_MARKER).exists()  # so moralkit will never clear it


def test_a_model_the_chapter_runs_is_in_the_provenance(out):
    calls = []

    def fake_load(name, **options):
        calls.append((name, options))
        return SimpleNamespace(
            name=name,
            spec=None,
            revision="rev9",
            weights_hash="e" * 64,
            n_layers=3,
            dtype=options["dtype"],
            device=options["device"],
        )

    ch = Chapter.start(
        "02_categorical_indifference", profile="tiny", backends=Backends(load=fake_load)
    )
    loaded = ch.load_model("tiny-llama", dtype="bfloat16")
    assert calls == [("tiny-llama", {"dtype": "bfloat16", "device": ch.params["device"]})]
    ch.finish()
    (model,) = json.loads((out / "provenance.json").read_text())["models"]
    assert model["revision"] == "rev9" and model["weights_hash"] == "e" * 64
    assert model["dtype"] == "bfloat16" and model["variant"] == "dtype=bfloat16"
    assert loaded.n_layers == 3
