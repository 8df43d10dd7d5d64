"""The positive control: judged Social-Chem actions on one valence axis, and each diagnostic
run on them (moralkit.data.judged, moralkit.diagnostics.controls)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from moralkit.activation_set import ActivationSet
from moralkit.data import judged
from moralkit.data.judged import judged_actions, valence_records
from moralkit.diagnostics.categorical import CategoricalConfig
from moralkit.diagnostics.controls import positive_control
from moralkit.diagnostics.dimensional import DimensionalConfig
from moralkit.diagnostics.gradient import GradientConfig
from moralkit.diagnostics.structural import StructuralConfig
from moralkit.foundations import DIMENSIONS

CONFIGS = {
    "categorical": CategoricalConfig(n_permutations=99, n_bootstrap=200),
    "gradient": GradientConfig(n_bootstrap=200),
    "structural": StructuralConfig(n_permutations=1, stability_permutations=1),
    "dimensional": DimensionalConfig(probes="ridge_cv", controls=()),
}


def _actions(n_per: int = 40) -> pd.DataFrame:
    judgment = np.repeat([-2, -1, 0, 1, 2], n_per)
    return pd.DataFrame(
        {
            "action_id": [f"a{i}" for i in range(judgment.size)],
            "text": [f"action {i}" for i in range(judgment.size)],
            "judgment": judgment,
        }
    )


def _activations(records, signal: float, seed: int = 0, width: int = 24) -> ActivationSet:
    """Valence along one direction (judgment / 2), plus a shared offset and noise."""
    rng = np.random.default_rng(seed)
    valence = (
        np.where(
            records.table["pole"] == "vice", -1.0, records.table["pole"].eq("virtue").astype(float)
        )
        * records.table["typicality"].to_numpy()
    )
    direction = rng.normal(size=width)
    X = 3.0 + signal * valence[:, None] * direction / np.linalg.norm(direction)
    X = X + 0.3 * rng.normal(size=(len(records), width))
    return ActivationSet.from_arrays({0: X, 1: X}, n_model_layers=2, model_id="toy")


def test_valence_records_encode_one_axis():
    records = valence_records(_actions())
    t = records.table
    assert t["foundation"].eq("care").all()
    assert t.groupby("pole").size().to_dict() == {"neutral": 40, "vice": 80, "virtue": 80}
    assert set(t.loc[t["is_prototype"], "typicality"]) == {1.0}
    assert t["is_prototype"].sum() == 80  # very good and very bad actions
    vectors = records.vectors
    assert (vectors[:, 2:] == 0).all()  # only the care/harm slots are used
    assert vectors[:, 0].max() == 1.0 and vectors[:, 1].max() == 1.0


def test_judged_actions_from_the_mirror(offline_mirror):
    actions = judged_actions()
    assert len(actions) == 498  # 500 rows, two exact duplicate texts dropped
    assert actions["text"].is_unique
    assert set(actions["judgment"]) == {-2, -1, 0, 1, 2}
    records = valence_records(actions)
    assert records.provenance["files"][judged.JUDGED_FILE] == actions.attrs["sha256"]


def test_a_bad_judgment_names_the_file(tmp_path, monkeypatch):
    bad = tmp_path / "judged.json"
    bad.write_text(json.dumps([{"action": "x", "label": 3.0}]))
    monkeypatch.setattr(judged, "fetch_with_checksum", lambda name: (bad, "0" * 64))
    with pytest.raises(ValueError, match="social-chem-101-judged.*3.0"):
        judged_actions()


@pytest.mark.parametrize("diagnostic", ["categorical", "gradient", "dimensional", "structural"])
def test_control_detects_valence_where_it_exists(diagnostic):
    records = valence_records(_actions())
    acts = _activations(records, signal=3.0)
    control = positive_control(diagnostic, {"toy": acts}, records, {"toy": 1}, CONFIGS[diagnostic])
    row = control.for_model("toy")
    assert set(row) == {"name", "value", "ci_low", "ci_high", "detected", "detail"}
    assert row["detected"], row
    assert control["control"]["layer"].iloc[0] == 1


@pytest.mark.parametrize("diagnostic", ["categorical", "gradient", "dimensional"])
def test_control_is_not_detected_without_valence(diagnostic):
    records = valence_records(_actions())
    acts = _activations(records, signal=0.0, seed=5)
    control = positive_control(diagnostic, {"toy": acts}, records, {"toy": 0}, CONFIGS[diagnostic])
    assert not control.for_model("toy")["detected"]


def test_control_refuses_unknown_diagnostics_and_missing_models():
    records = valence_records(_actions())
    acts = _activations(records, signal=1.0)
    with pytest.raises(ValueError, match="unknown diagnostic"):
        positive_control("nope", {"toy": acts}, records, {"toy": 0}, None)
    with pytest.raises(ValueError, match="other"):
        positive_control(
            "categorical", {"toy": acts}, records, {"other": 0}, CONFIGS["categorical"]
        )
    with pytest.raises(KeyError, match="other"):
        positive_control(
            "categorical", {"toy": acts}, records, {"toy": 0}, CONFIGS["categorical"]
        ).for_model("other")


def test_dimensions_stay_in_order():
    assert DIMENSIONS[:2] == ("care", "harm")  # the axis' slots


def test_the_workflow_fetches_the_control_texts_for_chapters_02_to_05():
    from moralkit import workflow
    from moralkit.book import list_chapters

    assert workflow.CONTROL_FILES == (judged.JUDGED_FILE,)
    for chapter in list_chapters():  # the declared chapters are the notebooks that run it
        runs = "valence_records" in chapter.path.read_text(encoding="utf-8")
        assert workflow.reads_control(chapter.chapter_id) == runs, chapter.chapter_id
    assert judged.JUDGED_FILE in workflow.data_files("quick", ["05_dimensional_indifference"])
    assert judged.JUDGED_FILE not in workflow.data_files("quick", ["01_moral_vectors"])
