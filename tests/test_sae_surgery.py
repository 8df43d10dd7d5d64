"""The surgery end to end on synthetic activations: seeds, cross-fitting, tables, cache hits,
one key per variant."""

import dataclasses

import numpy as np
import pytest
import torch
from synthetic import make_activations, make_records

from moralkit.activation_set import ActivationSet
from moralkit.sae import load_sae_dir
from moralkit.sae import surgery as surgery_module
from moralkit.sae.data import fold_records
from moralkit.sae.surgery import SurgeryConfig, find_layer, surgery_config, surgery_from_activations


@pytest.fixture(scope="module")
def inputs():
    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8, seed=0)
    acts = make_activations(records, {1: "opposed", 2: "shared"}, n_model_layers=3, width=24)
    rng = np.random.default_rng(0)
    extra = ActivationSet.from_arrays(
        {1: rng.normal(size=(80, 24)), 2: rng.normal(size=(80, 24))}, n_model_layers=3
    )
    return records, acts, extra


def _config(**overrides):
    return surgery_config("tiny", **{"seed": 1, "n_seeds": 2, "n_folds": 3, **overrides})


@pytest.mark.slow  # two seeds x (one SAE + three fine-tunings) (~20 s of CPU)
def test_surgery_tables_cross_fitting_and_cache(inputs, tmp_path, monkeypatch):
    records, acts, extra = inputs
    config = _config()
    result = surgery_from_activations("toy", acts, records, extra, [1], config, cache_dir=tmp_path)
    layers = result["layers"]
    assert layers[["layer", "seed"]].values.tolist() == [[1, 1], [1, 2]]
    assert (layers["n_train"] + layers["n_val"] == 80).all()  # unlabelled texts only
    assert (layers["n_labelled"] == len(records)).all()
    assert (layers["test_prototypes_min"] == 8).all()  # every prototype is a test record
    wanted = {"explained_variance_rest", "finetuned_explained_variance", "dead_fraction",
              "best_epoch", "best_epochs", "folds_improved", "passes_gate"}  # fmt: skip
    assert wanted <= set(layers)
    assert len(result["folds"]) == 2 * 3 and set(result["finetune_history"]["fold"]) == {0, 1, 2}
    for s in result.surgeries:
        for k, folder in enumerate(s.paths["finetuned"]):
            # every record of fold k is scored by fold k's SAE, which never trained on it
            fold = fold_records(records, s.folds, k, config.val_fraction, s.seed)
            assert np.array_equal(fold.table["split"] == "test", s.folds == k)
            sae, centre, features = load_sae_dir(folder)
            frozen = np.setdiff1d(np.arange(sae.cfg.d_sae), features)
            assert torch.equal(sae.W_dec[frozen], s.pretrained.W_dec[frozen])
        rec = s.apply(acts.get(1), "finetuned", "reconstruction")
        k = int(s.folds[0])
        own = s.finetuned[k].decode(
            s.finetuned[k].encode(torch.as_tensor(acts.get(1)[:1] - s.centre))
        )
        assert np.allclose(rec[0], own.detach().numpy()[0] + s.centre, atol=1e-5)

    def no_training(*args, **kwargs):
        raise AssertionError("a cached SAE was trained again")

    monkeypatch.setattr(surgery_module, "train_sae", no_training)
    monkeypatch.setattr(surgery_module, "finetune_sae", no_training)
    again = surgery_from_activations("toy", acts, records, extra, [1], config, cache_dir=tmp_path)
    assert again["layers"].equals(layers)
    assert result.claim()[0].claim_id == "sae_monosemantic_scarce"
    assert "per_seed" in result.claim()[0].extra


def _variants(records, extra, config):
    """Inputs and settings that each change an SAE: (name, records, unlabelled, config)."""
    other_records = records.table.copy()
    first_polar = other_records.index[other_records["pole"] != "neutral"][0]
    other_records.loc[first_polar, "typicality"] *= 0.5
    return [
        ("objective", records, extra, _config(objective="page")),
        ("sampler_bug", records, extra, _config(sampler_bug=True)),
        ("seed", records, extra, _config(seed=3)),
        ("preset", records, extra, surgery_config("quick", seed=1, n_seeds=2, n_folds=3)),
        ("folds", records, extra, _config(n_folds=2)),
        ("unlabelled", records, extra[:-1], config),
        ("records", type(records)(other_records, records.provenance), extra, config),
    ]


@pytest.mark.slow  # one seed's SAE and three fine-tunings (~10 s of CPU)
def test_a_lookup_never_returns_another_variants_sae(inputs, tmp_path, monkeypatch):
    """The store key holds every setting that changes an SAE: the same settings find it, any
    other objective, sampler, seed, preset, fold count, unlabelled set or record table does
    not; a second seed finds the first seed's SAEs and trains only its own."""
    records, acts, extra = inputs
    config = _config(n_seeds=1)
    labelled, unlabelled = acts.get(1), extra.get(1)
    trained = surgery_from_activations("toy", acts, records, extra, [1], config, cache_dir=tmp_path)
    found = find_layer("toy", 1, labelled, records, unlabelled, config, cache_dir=tmp_path)
    assert found[1]["pretrained"] == trained.surgeries[0].paths["pretrained"]
    assert found[1]["finetuned"] == trained.surgeries[0].paths["finetuned"]
    same = _config(n_seeds=1)  # equal settings, built again
    assert find_layer("toy", 1, labelled, records, unlabelled.copy(), same, tmp_path) == found
    found_anyway = []
    for name, recs, more, variant in _variants(records, unlabelled, config):
        try:
            find_layer("toy", 1, labelled, recs, more, variant, cache_dir=tmp_path)
            found_anyway.append(name)
        except FileNotFoundError as err:
            assert "SAE for model='toy' layer=1 with these settings" in str(err)
    assert found_anyway == []
    # pretraining reads no labels: only what changes it changes its key
    payloads = surgery_module.layer_payloads
    pretraining = payloads("toy", 1, labelled, records, unlabelled, config, 1)["pretrained"]
    for other in (_config(objective="page"), _config(n_folds=2)):
        assert payloads("toy", 1, labelled, records, unlabelled, other, 1)["pretrained"] == (
            pretraining
        )

    def no_training(*args, **kwargs):
        raise AssertionError("train=False trained an SAE")

    monkeypatch.setattr(surgery_module, "train_sae", no_training)
    monkeypatch.setattr(surgery_module, "finetune_sae", no_training)
    again = surgery_from_activations(
        "toy", acts, records, extra, [1], config, cache_dir=tmp_path, train=False
    )
    assert again.surgeries[0].paths == trained.surgeries[0].paths
    page = _config(n_seeds=1, objective="page")
    with pytest.raises(FileNotFoundError, match="no finetuned SAE for model='toy' layer=1"):
        surgery_from_activations(
            "toy", acts, records, extra, [1], page, cache_dir=tmp_path, train=False
        )


def test_pretraining_needs_unlabelled_texts(inputs, tmp_path):
    records, acts, _ = inputs
    with pytest.raises(ValueError, match="n_unlabelled"):
        surgery_from_activations("toy", acts, records, None, [1], _config(), cache_dir=tmp_path)


def test_surgery_config_reads_a_chapters_parameters_and_checks_them():
    params = {"sae_preset": "tiny", "objective": "page", "sampler_bug": True, "seed": 3,
              "n_unlabelled": 10, "pooling": "last", "n_bootstrap": 5, "n_seeds": 2,
              "n_folds": 4, "ground_truth": "moralstrength",
              "control_ground_truth": "socialchem-subset"}  # fmt: skip
    config = SurgeryConfig.from_parameters(params)
    assert config == surgery_config(
        "tiny", "page", True, 3, 10, "last", 2, 4, ("moralstrength", "socialchem-subset")
    )
    assert config.seeds == (3, 4) and config.train_for(4).seed == config.finetune_for(4).seed == 4
    assert config.train.seed == config.finetune.seed == 3 and config.sampler_bug
    assert config.finetune.w_l1 == 0 and config.train.target_l0 == 10  # page objective, tiny
    assert SurgeryConfig.from_parameters({"sae_preset": "tiny", "seed": None}).seed == 0
    for bad, match in (({"objective": "x"}, "objective='x'"), ({"pooling": "max"}, "pooling"),
                       ({"n_unlabelled": -2}, "n_unlabelled=-2"), ({"n_seeds": 0}, "n_seeds"),
                       ({"n_folds": 1}, "n_folds"), ({"sae_preset": "huge"}, "unknown SAE preset"),
                       ({"ground_truth": "nope"}, "unknown ground truth")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            SurgeryConfig.from_parameters({**params, **bad})
    assert dataclasses.replace(config, n_seeds=1).seeds == (3,)


def test_shared_pretraining_keys_one_pretrained_sae_and_per_seed_fine_tuning(inputs):
    """With ``shared_pretraining`` the seeds share the first seed's pretrained SAE (one key)
    but keep their own folds and fine-tuning; without it every key differs by seed."""
    records, acts, extra = inputs
    labelled, unlabelled = acts.get(1), extra.get(1)

    def keys(config, seed):
        return surgery_module.layer_payloads("toy", 1, labelled, records, unlabelled, config, seed)

    shared = _config(shared_pretraining=True)
    first, second = keys(shared, 1), keys(shared, 2)
    assert first["pretrained"] == second["pretrained"]
    assert first["finetuned"] != second["finetuned"]
    assert shared.train_for(2).seed == 1 and shared.finetune_for(2).seed == 2
    own = _config()
    assert keys(own, 1)["pretrained"] != keys(own, 2)["pretrained"]
    assert keys(own, 1)["pretrained"] == first["pretrained"]  # seed 1 pretrains alike either way
    params = {"sae_preset": "tiny", "shared_pretraining": True}
    assert SurgeryConfig.from_parameters(params).shared_pretraining
