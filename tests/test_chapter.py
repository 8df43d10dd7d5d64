"""The Chapter API: outputs, claims, provenance, and the calls into data and activations."""

from __future__ import annotations

import json
import sys
import types

import matplotlib

matplotlib.use("Agg")  # tests only: no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from moralkit.activation_set import ActivationSet  # noqa: E402
from moralkit.chapter import Chapter  # noqa: E402


@pytest.fixture
def out(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    monkeypatch.setenv("MORALKIT_OUTPUT_DIR", str(folder))
    monkeypatch.delenv("MORALKIT_PROFILE", raising=False)
    monkeypatch.delenv("MORALKIT_NOTEBOOK_SOURCE", raising=False)
    return folder


def test_start_resolves_profile_and_output_folder(out):
    ch = Chapter.start("02_categorical_indifference", profile="tiny", layers="0,-1", seed=None)
    assert ch.output_dir == out and out.is_dir()
    assert ch.params["profile"] == "tiny"
    assert ch.params["seed"] == 42  # None takes the profile's value
    assert ch.models == ["smollm2-135m"]
    assert ch.layers_for(30) == [0, 29]
    assert ch.layers_for(18) == [0, 17]


def test_layers_for_narrows_by_a_second_layer_parameter(out):
    ch = Chapter.start("05_dimensional_indifference", profile="quick", layers="0,6,12,29")
    assert ch.params["probe_layers"] == "every:3"  # quick profile's chapter value
    assert ch.layers_for(30, among="probe_layers") == [0, 6, 12, 29]  # every:3 keeps 29 (last)
    ch = Chapter.start("05_dimensional_indifference", profile="quick", layers="1,2,4")
    assert ch.layers_for(30, among="probe_layers") == [1, 2, 4]  # nothing shared: all of layers
    ch = Chapter.start("05_dimensional_indifference", profile="quick")
    assert ch.layers_for(30, among="probe_layers") == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 29]


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


@pytest.fixture
def fake_backends(monkeypatch):
    """Stand-ins for moralkit.data / moralkit.activations / moralkit.models."""
    calls: dict[str, list] = {"records": [], "activations": []}

    class Records:
        def __init__(self, n):
            self.texts = [f"text {i}" for i in range(n)]
            self.provenance = {"ground_truth": "moralstrength", "files": {"lexicon.csv": "ab" * 32}}

        def __len__(self):
            return len(self.texts)

    def diagnostic_records(ground_truth, sample_scale=1.0, seed=42):
        calls["records"].append((ground_truth, sample_scale, seed))
        return Records(4)

    def cached_activations(
        model,
        texts,
        layers=None,
        poolings=("mean",),
        template="",
        dtype="float32",
        device="cpu",
        random_init=False,
        seed=0,
        progress=True,
    ):
        calls["activations"].append(
            dict(
                model=model,
                layers=layers,
                poolings=poolings,
                template=template,
                dtype=dtype,
                device=device,
            )
        )
        arrays = {p: np.zeros((len(layers), len(texts), 3), np.float32) for p in poolings}
        meta = {
            "model_id": f"hub/{model}",
            "revision": "r1",
            "weights_hash": "f" * 64,
            "cache_key": f"k-{model}-{random_init}",
            "cache_hit": True,
        }
        return ActivationSet(arrays, tuple(layers), 12, f"hub/{model}", meta)

    data_mod = types.ModuleType("moralkit.data")
    data_mod.diagnostic_records = diagnostic_records
    act_mod = types.ModuleType("moralkit.activations")
    act_mod.cached_activations = cached_activations
    models_mod = types.ModuleType("moralkit.models")
    models_mod.get_model_spec = lambda name: types.SimpleNamespace(n_layers=12)
    import moralkit

    for name, mod in (("data", data_mod), ("activations", act_mod), ("models", models_mod)):
        monkeypatch.setitem(sys.modules, f"moralkit.{name}", mod)
        monkeypatch.setattr(moralkit, name, mod, raising=False)
    return calls


def test_records_and_activations_are_recorded(out, fake_backends):
    ch = Chapter.start("02_categorical_indifference", profile="tiny", layers="every:5")
    records = ch.records()
    assert ch.records() is records  # cached per ground truth
    assert fake_backends["records"] == [("moralstrength", 0.15, 42)]
    ch.records(ground_truth="socialchem-subset")
    assert fake_backends["records"][-1][0] == "socialchem-subset"

    acts = ch.activations("smollm2-135m", records)
    call = fake_backends["activations"][0]
    assert call["layers"] == [0, 5, 10, 11]  # every:5 on a 12-layer model, plus the last
    assert call["poolings"] == ("mean", "last")
    assert call["template"] == "{action} is morally" and call["dtype"] == "float32"
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


def test_variant_extractions_get_their_own_provenance_entry(out, fake_backends):
    ch = Chapter.start("06_across_models", profile="tiny", layers="0,-1")
    records = ch.records()
    ch.activations("smollm2-135m", records)
    ch.activations("smollm2-135m", records)  # the same extraction: one entry
    ch.activations("smollm2-135m", records, random_init=True, seed=3)
    assert fake_backends["activations"][-1]["layers"] == [0, 11]
    entries = ch.provenance()["models"]
    assert [e["variant"] for e in entries] == ["", "random_init=True, seed=3"]


def test_config_from_parameters(out):
    from moralkit.diagnostics.across_models import ConditionConfig
    from moralkit.diagnostics.dimensional import ProbeConfig

    ch = Chapter.start("06_across_models", profile="tiny", twin_sample_scale=0.2)
    cfg = ch.config(ConditionConfig)
    assert cfg.twin_sample_scale == 0.2  # the argument beats the profile's 0.02
    assert cfg.prompted_sample_scale == 0.01  # the tiny profile's chapter value
    assert cfg.system_prompt == ConditionConfig().system_prompt  # unset: the default
    ch = Chapter.start("05_dimensional_indifference", profile="quick", learning_rate=0.01)
    probe = ch.config(ProbeConfig, lr="learning_rate")
    assert probe.lr == 0.01 and probe.max_epochs == ProbeConfig().max_epochs
