"""Chapter 07's re-diagnosis recipe follows the gate: layers below it get a row saying so and
no numbers, and the claims stay inconclusive; gated layers get the effects and a claim layer."""

import numpy as np
import pandas as pd
import pytest
from synthetic import make_activations, make_records

from moralkit.activation_set import ActivationSet
from moralkit.claims import INCONCLUSIVE, judge_claim, load_claims
from moralkit.sae import recipe
from moralkit.sae.rediagnose import RediagnosisConfig
from moralkit.sae.surgery import surgery_config, surgery_from_activations


@pytest.fixture(scope="module")
def surgery(tmp_path_factory):
    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8, seed=0)
    acts = make_activations(records, {1: "opposed"}, n_model_layers=3, width=24)
    rng = np.random.default_rng(0)
    extra = ActivationSet.from_arrays({1: rng.normal(size=(60, 24))}, n_model_layers=3)
    config = surgery_config("tiny", seed=0, n_seeds=1, n_folds=2)
    cache = tmp_path_factory.mktemp("sae")
    result = surgery_from_activations("toy", acts, records, extra, [1], config, cache_dir=cache)
    result.inputs = recipe.SurgeryInputs(records, acts, pd.DataFrame(), extra)
    control = records.where(records.table["pole"] != "vice")
    control_acts = make_activations(control, {1: "opposed"}, n_model_layers=3, width=24, seed=2)
    return result, control, control_acts


def _run(surgery, control, control_acts):
    def extract(model, recs, layers, poolings):
        assert len(recs) == len(control) and list(layers) == [1]
        return control_acts

    config = RediagnosisConfig(which=("categorical", "gradient"), n_bootstrap=1000)
    return recipe.sae_rediagnosis("toy", surgery, control, extract, config, "syn", "ctl")


@pytest.mark.slow  # one tiny SAE, two fine-tunings, 2 x 5 conditions x 1,000 draws (~15 s)
def test_a_layer_below_the_gate_is_not_rediagnosed_and_its_claims_are_inconclusive(surgery):
    result, control, control_acts = surgery
    assert not result["layers"]["passes_gate"].any()  # a tiny SAE on 60 random vectors
    out = _run(result, control, control_acts)
    d = out["differences"]
    assert d["verdict"].tolist() == ["below the gate"] and d["layer"].tolist() == [1]
    claims = out.claim()
    assert {c.claim_id for c in claims} == {"sae_typicality_up", "sae_opposing_similarity_down"}
    for c in claims:
        entry = {"value": c.value, "gates": [g.as_dict() for g in c.gates]}
        assert judge_claim(load_claims()[c.claim_id], entry).verdict == INCONCLUSIVE


@pytest.mark.slow
def test_a_gated_layer_is_rediagnosed_on_both_ground_truths(surgery, monkeypatch):
    result, control, control_acts = surgery
    relaxed = {"min_explained_variance": -np.inf, "max_dead_fraction": 1.01, "min_resamples": 1}
    monkeypatch.setattr(recipe, "claim_settings", lambda claim_id: relaxed)
    out = _run(result, control, control_acts)
    v = out.verdicts()
    assert set(v["ground_truth"]) == {"syn", "ctl"} and out.claim_layer == 1
    assert set(v[v["ground_truth"] == "ctl"]["diagnostic"]) == {"gradient"}  # no vice records
    assert all(g.passed for g in out.claim_gates)
    assert {c.claim_id for c in out.claim()} == {
        "sae_typicality_up",
        "sae_opposing_similarity_down",
    }
