"""The surgery end to end on synthetic activations: tables, cache hits, one key per variant."""

import numpy as np
import pytest
import torch
from synthetic import make_activations, make_records

from moralkit.activation_set import ActivationSet
from moralkit.sae import load_sae_dir
from moralkit.sae import surgery as surgery_module
from moralkit.sae.surgery import SurgeryConfig, find_layer, surgery_config, surgery_from_activations


@pytest.fixture(scope="module")
def inputs():
    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8, seed=0)
    acts = make_activations(records, {1: "opposed", 2: "shared"}, n_model_layers=3, width=24)
    rng = np.random.default_rng(0)
    unlabelled = ActivationSet.from_arrays(
        {1: rng.normal(size=(50, 24)), 2: rng.normal(size=(50, 24))}, n_model_layers=3
    )
    return records, acts, unlabelled


@pytest.mark.slow  # two SAEs trained and fine-tuned end to end (~15 s of CPU)
def test_surgery_tables_cache_and_loading(inputs, tmp_path, monkeypatch):
    records, acts, unlabelled = inputs
    config = surgery_config("tiny", seed=1)
    result = surgery_from_activations(
        "toy", acts, records, unlabelled, [1, 2], config, cache_dir=tmp_path
    )
    layers = result["layers"]
    assert layers["layer"].tolist() == [1, 2]
    n_train = int((records.table["split"] == "train").sum()) + 50
    assert (layers["n_train"] == n_train).all()
    assert np.isfinite(layers["variance_lost"]).all() and (layers["variance_lost"] >= 0).all()
    assert set(result["finetune_history"]["layer"]) == {1, 2}
    assert len(result["features"]) == 2 * layers["d_sae"].iloc[0]

    def no_training(*args, **kwargs):
        raise AssertionError("a cached SAE was trained again")

    monkeypatch.setattr(surgery_module, "train_sae", no_training)
    monkeypatch.setattr(surgery_module, "finetune_sae", no_training)
    again = surgery_from_activations(
        "toy", acts, records, unlabelled, [1, 2], config, cache_dir=tmp_path
    )
    assert again["layers"].equals(layers)

    found = find_layer(
        "toy", 2, acts.get(2), records, unlabelled.get(2), config, cache_dir=tmp_path
    )
    assert found == again.surgeries[1].paths
    sae, centre, features = load_sae_dir(found["finetuned"])
    assert len(features) == layers.loc[layers["layer"] == 2, "n_selected"].iloc[0]
    pre, pre_centre, pre_features = load_sae_dir(found["pretrained"])
    assert torch.equal(centre, pre_centre) and len(pre_features) == 0
    frozen = np.setdiff1d(np.arange(sae.cfg.d_sae), features)
    assert torch.equal(sae.W_dec[frozen], pre.W_dec[frozen])
    saes = result.saes()
    assert set(saes) == {"pretrained", "finetuned"} and set(saes["finetuned"]) == {1, 2}
    claims = result.claim()
    assert claims[0].claim_id == "sae_monosemantic_scarce"


def _variants(records, unlabelled, config):
    """Inputs and settings that each change the SAEs: (name, records, unlabelled, config)."""
    other_records = records.table.copy()
    first_polar = other_records.index[other_records["pole"] != "neutral"][0]
    other_records.loc[first_polar, "typicality"] *= 0.5
    return [
        ("objective", records, unlabelled, surgery_config("tiny", objective="page", seed=1)),
        ("sampler_bug", records, unlabelled, surgery_config("tiny", sampler_bug=True, seed=1)),
        ("seed", records, unlabelled, surgery_config("tiny", seed=2)),
        ("preset", records, unlabelled, surgery_config("quick", seed=1)),
        ("unlabelled", records, unlabelled[:-1], config),
        ("no unlabelled", records, None, config),
        ("records", type(records)(other_records, records.provenance), unlabelled, config),
    ]


@pytest.mark.slow  # one SAE trained and fine-tuned (~5 s of CPU)
def test_a_lookup_never_returns_another_variants_sae(inputs, tmp_path, monkeypatch):
    """The store key holds every setting that changes an SAE: the same settings find it, any
    other objective, sampler, seed, preset, unlabelled set or record table does not."""
    records, acts, unlabelled = inputs
    config = surgery_config("tiny", seed=1)
    labelled, unlabelled_x = acts.get(1), unlabelled.get(1)
    trained = surgery_from_activations(
        "toy", acts, records, unlabelled, [1], config, cache_dir=tmp_path
    )
    found = find_layer("toy", 1, labelled, records, unlabelled_x, config, cache_dir=tmp_path)
    assert found == trained.surgeries[0].paths
    same = surgery_config("tiny", seed=1)  # equal settings, built again
    assert find_layer("toy", 1, labelled, records, unlabelled_x.copy(), same, tmp_path) == found
    variants = _variants(records, unlabelled_x, config)
    found_anyway = []
    for name, recs, more, variant in variants:
        try:
            find_layer("toy", 1, labelled, recs, more, variant, cache_dir=tmp_path)
            found_anyway.append(name)
        except FileNotFoundError as err:
            assert "SAE for model='toy' layer=1 with these settings" in str(err)
    assert found_anyway == [] and len(variants) == 7
    # a variant's pretraining is shared only where pretraining cannot differ
    page = surgery_config("tiny", objective="page", seed=1)
    payloads = surgery_module.layer_payloads
    pretraining = payloads("toy", 1, labelled, records, unlabelled_x, config)["pretrained"]
    assert payloads("toy", 1, labelled, records, unlabelled_x, page)["pretrained"] == pretraining

    def no_training(*args, **kwargs):
        raise AssertionError("train=False trained an SAE")

    monkeypatch.setattr(surgery_module, "train_sae", no_training)
    monkeypatch.setattr(surgery_module, "finetune_sae", no_training)
    again = surgery_from_activations(
        "toy", acts, records, unlabelled, [1], config, cache_dir=tmp_path, train=False
    )
    assert again.surgeries[0].paths == found
    with pytest.raises(FileNotFoundError, match="no finetuned SAE for model='toy' layer=1"):
        surgery_from_activations(
            "toy", acts, records, unlabelled, [1], page, cache_dir=tmp_path, train=False
        )


def test_surgery_config_reads_a_chapters_parameters_and_checks_them():
    params = {"sae_preset": "tiny", "objective": "page", "sampler_bug": True, "seed": 3,
              "n_unlabelled": 10, "pooling": "last", "n_bootstrap": 5}  # fmt: skip
    config = SurgeryConfig.from_parameters(params)
    assert config == surgery_config("tiny", "page", True, 3, 10, "last")
    assert config.train.seed == config.finetune.seed == 3 and config.sampler_bug
    assert config.finetune.w_l1 == 0 and config.train.target_l0 == 10  # page objective, tiny
    assert SurgeryConfig.from_parameters({"sae_preset": "tiny", "seed": None}).seed == 0
    for bad, match in (({"objective": "x"}, "objective='x'"), ({"pooling": "max"}, "pooling"),
                       ({"n_unlabelled": -2}, "n_unlabelled=-2"),
                       ({"sae_preset": "huge"}, "unknown SAE preset")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            SurgeryConfig.from_parameters({**params, **bad})
