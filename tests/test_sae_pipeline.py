"""The surgery end to end on synthetic activations: tables, cache hits, loading for steering."""

import numpy as np
import pytest
import torch
from synthetic import make_activations, make_records

from moralkit.activation_set import ActivationSet
from moralkit.sae import load_trained
from moralkit.sae import pipeline as pipeline_module
from moralkit.sae.pipeline import run_surgery, surgery_config


@pytest.fixture(scope="module")
def inputs():
    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8, seed=0)
    acts = make_activations(records, {1: "opposed", 2: "shared"}, n_model_layers=3, width=24)
    rng = np.random.default_rng(0)
    extra = ActivationSet.from_arrays(
        {1: rng.normal(size=(50, 24)), 2: rng.normal(size=(50, 24))}, n_model_layers=3
    )
    return records, acts, extra


@pytest.mark.slow  # two SAEs trained and fine-tuned end to end (~15 s of CPU)
def test_surgery_tables_cache_and_loading(inputs, tmp_path, monkeypatch):
    records, acts, extra = inputs
    config = surgery_config("tiny", seed=1)
    result = run_surgery("toy", acts, records, extra, [1, 2], config, cache_dir=tmp_path)
    layers = result["layers"]
    assert layers["layer"].tolist() == [1, 2]
    n_train = int((records.table["split"] == "train").sum()) + 50
    assert (layers["n_train"] == n_train).all()
    assert np.isfinite(layers["variance_lost"]).all() and (layers["variance_lost"] >= 0).all()
    assert set(result["finetune_history"]["layer"]) == {1, 2}
    assert len(result["features"]) == 2 * layers["d_sae"].iloc[0]

    def no_training(*args, **kwargs):
        raise AssertionError("a cached SAE was trained again")

    monkeypatch.setattr(pipeline_module, "train_sae", no_training)
    monkeypatch.setattr(pipeline_module, "finetune_sae", no_training)
    again = run_surgery("toy", acts, records, extra, [1, 2], config, cache_dir=tmp_path)
    assert again["layers"].equals(layers)

    sae, centre, features = load_trained("toy", 2, "finetuned", "tiny", cache_dir=tmp_path)
    assert len(features) == layers.loc[layers["layer"] == 2, "n_selected"].iloc[0]
    pre, pre_centre, pre_features = load_trained("toy", 2, "pretrained", "tiny", cache_dir=tmp_path)
    assert torch.equal(centre, pre_centre) and len(pre_features) == 0
    frozen = np.setdiff1d(np.arange(sae.cfg.d_sae), features)
    assert torch.equal(sae.W_dec[frozen], pre.W_dec[frozen])
    saes = result.saes()
    assert set(saes) == {"pretrained", "finetuned"} and set(saes["finetuned"]) == {1, 2}
    claims = result.claim()
    assert claims[0].claim_id == "sae_monosemantic_scarce"
