"""Selective fine-tuning: the six terms by hand, frozen weights stay bit-identical, sampler."""

import dataclasses

import numpy as np
import pytest
import torch
from synthetic import make_records

from moralkit.foundations import DIMENSIONS
from moralkit.sae.config import FinetuneConfig
from moralkit.sae.finetune import Batch, finetune_sae, objective_terms, sampler_weights
from moralkit.sae.identify import Identification, identify_features
from moralkit.sae.surgery import encode
from moralkit.sae.train import new_training_sae


def _ident(n_features: int, readout=None, strict=(), primary=(), pairs=None) -> Identification:
    empty = np.zeros(0, dtype=np.int64)
    return Identification(
        r=np.zeros((n_features, 10)),
        types=np.array(["weak"] * n_features, dtype=object),
        strict=np.asarray(strict, dtype=np.int64),
        primary=np.asarray(primary, dtype=np.int64),
        selected=np.arange(n_features),
        readout=np.zeros((10, n_features)) if readout is None else readout,
        pairs=pairs or [(empty, empty)] * 5,
        scores={},
    )


def _vectors(rows: list[dict]) -> np.ndarray:
    out = np.zeros((len(rows), 10))
    for i, row in enumerate(rows):
        for name, value in row.items():
            out[i, DIMENSIONS.index(name)] = value
    return out


def test_reconstruction_l1_alignment_and_off_dimension_by_hand():
    y = _vectors([{"care": 0.5}, {"harm": 1.0}])
    b = Batch.of(np.array([[1.0, 2.0], [0.0, -2.0]]), y)
    z = torch.tensor([[2.0, 0.0, 1.0], [3.0, 1.0, 0.0]], requires_grad=True)
    x_hat = torch.zeros(2, 2, requires_grad=True)
    readout = np.zeros((10, 3))
    readout[0, 2] = 1.0  # a_care = z_2
    ident = _ident(3, readout=readout, strict=[0], primary=[0])  # feature 0: care
    t = objective_terms(z, x_hat, b, ident, FinetuneConfig())
    assert float(t["reconstruction"]) == pytest.approx((1 + 4 + 0 + 4) / 4)
    assert float(t["l1"]) == pytest.approx(7 / 6)
    # alignment: only entries > 0: (sigmoid(1) - 0.5)² for care on row 0, (sigmoid(0) - 1)² harm
    s1 = 1 / (1 + np.exp(-1.0))
    assert float(t["alignment"]) == pytest.approx(((s1 - 0.5) ** 2 + 0.25) / 2)
    # off-dimension: row 1's argmax is harm, not care: z[1, 0]² = 9
    assert float(t["off_dimension"]) == pytest.approx(9.0)
    assert float(t["polarity"]) == 0.0  # fewer than 4 samples of each pole
    assert float(t["typicality"]) == 0.0  # fewer than 16 positives per dimension
    t["off_dimension"].backward()
    assert z.grad.tolist() == [[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]]
    t["reconstruction"].backward()
    assert x_hat.grad.tolist() == [[-0.5, -1.0], [0.0, 1.0]]


def test_polarity_hinge_by_hand():
    y = _vectors([{"care": 1.0}] * 4 + [{"harm": 1.0}] * 4)
    b = Batch.of(np.zeros((8, 2)), y)
    z = torch.zeros(8, 2)
    z[:4, 0] = 0.2  # virtue samples: V = 0.2, C = 0
    z[4:, 1] = 1.0  # vice samples: C = 1.0, V = 0
    z.requires_grad_(True)
    pairs = [(np.array([0]), np.array([1]))] + [(np.zeros(0, int), np.zeros(0, int))] * 4
    t = objective_terms(z, torch.zeros(8, 2), b, _ident(2, pairs=pairs), FinetuneConfig())
    # virtue hinge relu(0.5 - 0.2 + 0) = 0.3; vice hinge relu(0.5 - 1 + 0) = 0; mean of the two
    assert float(t["polarity"]) == pytest.approx(0.15)
    t["polarity"].backward()
    assert torch.allclose(z.grad[:4], torch.tensor([[-0.125, 0.125]] * 4))
    assert torch.equal(z.grad[4:], torch.zeros(4, 2))


def test_typicality_hinge_is_the_margin_when_typicality_is_flat():
    y = _vectors([{"care": 0.5}] * 16)
    readout = np.zeros((10, 1))
    readout[0, 0] = 1.0
    z = torch.rand(16, 1)
    t = objective_terms(
        z,
        torch.zeros(16, 2),
        Batch.of(np.zeros((16, 2)), y),
        _ident(1, readout=readout),
        FinetuneConfig(),
    )
    assert float(t["typicality"]) == pytest.approx(0.1)  # Δt = 0 for every pair


def test_sampler_weights_intended_and_with_the_code_bug():
    y = _vectors(
        [{"care": 1.0}, {"care": 0.75}, {"care": 0.5}, {"harm": 0.25}, {"harm": 0.125}, {}]
    )
    assert sampler_weights(y).tolist() == [3.0, 2.0, 1.5, 1.0, 1.0, 0.3]
    assert sampler_weights(y, bug=True).tolist() == [2.0, 2.0, 1.5, 1.0, 1.0, 0.3]
    skewed = _vectors([{"care": 0.25}] * 6 + [{"harm": 0.25}] * 2)
    assert sampler_weights(skewed).tolist() == [1.0] * 6 + [3.0] * 2


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    records = make_records(n_per_stratum=4, n_prototypes=6, n_neutral=6, seed=1)
    d = 16
    atoms = rng.normal(size=(10, d))
    x = (records.vectors @ atoms + 0.1 * rng.normal(size=(len(records), d))).astype(np.float32)
    sae = new_training_sae(d, 40, seed=0)
    return records, x, sae


def test_frozen_features_stay_bit_identical(toy):
    records, x, sae = toy
    centre = x.mean(axis=0)
    split = records.table["split"]
    tr, va = (split == "train").to_numpy(), (split == "val").to_numpy()
    ident = identify_features(encode(sae, centre, x[va]), records.where(va))
    ident = dataclasses.replace(ident, selected=np.array([1, 4, 7, 20]))
    before = {k: v.detach().clone() for k, v in sae.state_dict().items()}
    config = FinetuneConfig(epochs=2, batch_size=64, lr=1e-2, patience=5)
    res = finetune_sae(
        sae,
        centre,
        x[tr],
        records.where(tr),
        x[va],
        records.where(va),
        ident,
        config,
        progress=False,
    )
    after = res.sae.state_dict()
    frozen = np.setdiff1d(np.arange(40), ident.selected)
    assert torch.equal(after["W_enc"][:, frozen], before["W_enc"][:, frozen])
    assert torch.equal(after["b_enc"][frozen], before["b_enc"][frozen])
    assert torch.equal(after["W_dec"][frozen], before["W_dec"][frozen])
    assert torch.equal(after["b_dec"], before["b_dec"])
    assert not torch.equal(after["W_enc"][:, ident.selected], before["W_enc"][:, ident.selected])
    assert torch.equal(sae.W_enc, before["W_enc"])  # the input SAE is untouched
    assert {"val_alignment", "val_polarity", "val_total", "reconstruction"} <= set(res.history)


def test_a_training_set_of_a_few_steps_still_schedules(toy):
    # 10 epochs of one batch: OneCycleLR's warm-up would be 0.1 * 10 - 1 = 0 steps long
    records, x, sae = toy
    split = records.table["split"]
    tr, va = (split == "train").to_numpy(), (split == "val").to_numpy()
    centre = x.mean(axis=0)
    ident = identify_features(encode(sae, centre, x[va]), records.where(va))
    ident = dataclasses.replace(ident, selected=np.array([1, 4]))
    config = FinetuneConfig(epochs=10, batch_size=10_000, lr=1e-2, patience=50)
    args = (sae, centre, x[tr], records.where(tr), x[va], records.where(va), ident, config)
    res = finetune_sae(*args, progress=False)
    assert len(res.history) == 11  # the evaluation before training, then one row per epoch


@pytest.mark.parametrize("lr, improves", [(1e-2, True), (50.0, False)])
def test_early_stopping_starts_from_infinity_and_says_whether_it_improved(toy, lr, improves):
    """As in the official code the kept state is a fine-tuned epoch even when no epoch beats
    the pretrained SAE (epoch 0) on validation; ``improved`` says whether one did."""
    records, x, sae = toy
    split = records.table["split"]
    tr, va = (split == "train").to_numpy(), (split == "val").to_numpy()
    centre = x.mean(axis=0)
    ident = identify_features(encode(sae, centre, x[va]), records.where(va))
    config = FinetuneConfig(epochs=3, batch_size=64, lr=lr, patience=5, grad_clip=1e6)
    args = (sae, centre, x[tr], records.where(tr), x[va], records.where(va), ident, config)
    res = finetune_sae(*args, progress=False)
    hist = res.history.set_index("epoch")["val_total"]
    assert res.best_epoch >= 1 and hist[res.best_epoch] == hist.loc[1:].min()
    assert res.improved is improves
    assert res.improved == (hist.loc[1:].min() < hist[0])
