"""Moral feature identification: planted features are recovered and typed."""

import numpy as np
import pytest
from synthetic import make_records

from moralkit.foundations import DIMENSIONS
from moralkit.sae.config import IdentifyConfig
from moralkit.sae.identify import feature_correlations, identify_features, top_records
from moralkit.sae.surgery import encode
from moralkit.sae.train import new_training_sae


def _planted(n_random: int = 30, seed: int = 0):
    """Activations built from 10 known atoms tied to the dimensions, plus an SAE whose first
    10 features read those atoms, feature 10 reads care+loyalty atoms (polysemantic), and the
    rest are random directions."""
    rng = np.random.default_rng(seed)
    records = make_records(n_per_stratum=6, n_prototypes=8, n_neutral=10, seed=seed)
    d = 40
    atoms = np.linalg.qr(rng.normal(size=(d, 12)))[0].T[:10]  # orthonormal (10, d)
    x = records.vectors @ atoms * 4 + 0.05 * rng.normal(size=(len(records), d))
    sae = new_training_sae(d, 11 + n_random, seed=seed)
    W = np.concatenate(
        [
            atoms,
            (atoms[0] + atoms[4])[None] / np.sqrt(2),
            rng.normal(size=(n_random, d)) / np.sqrt(d),
        ]
    )
    import torch

    with torch.no_grad():
        sae.W_enc.copy_(torch.as_tensor(W.T, dtype=torch.float32))
        sae.b_enc.fill_(-0.01)
    return records, x.astype(np.float32), sae


def test_planted_features_are_recovered():
    records, x, sae = _planted()
    z = encode(sae, np.zeros(x.shape[1], dtype=np.float32), x)
    ident = identify_features(z, records, IdentifyConfig())
    assert set(range(10)) <= set(ident.strict.tolist())
    primary = dict(zip(ident.strict.tolist(), ident.primary.tolist(), strict=True))
    assert [primary[j] for j in range(10)] == list(range(10))
    assert (ident.types[:10] == "monosemantic").all()
    assert ident.types[10] == "polysemantic"  # care and loyalty: not one foundation's pair
    assert 10 not in ident.strict
    assert set(range(10)) <= set(ident.selected.tolist())
    for j in range(10):  # each dimension reads mostly its planted feature
        assert ident.readout[j].argmax() == j
        assert ident.readout[j].sum() == pytest.approx(1.0)
    assert ident.scores["mono_ratio"] > 0
    assert ident.scores["proto_spearman"] > 0.3


def test_feature_correlations_match_numpy_and_zero_for_constants():
    rng = np.random.default_rng(0)
    Z, Y = rng.random((50, 4)), rng.random((50, 3))
    Z[:, 2] = 0.0
    r = feature_correlations(Z, Y)
    assert r[0, 1] == pytest.approx(np.corrcoef(Z[:, 0], Y[:, 1])[0, 1])
    assert (r[2] == 0).all()


def test_typing_rules_on_hand_made_correlations():
    from moralkit.sae.identify import _strict, _types

    r = np.zeros((5, 10))
    r[0, 3] = 0.4  # one dimension: monosemantic
    r[1, [0, 1]] = [0.3, 0.2]  # care and harm: one foundation's pair, monosemantic
    r[2, [0, 2]] = [0.35, 0.2]  # care and fairness: polysemantic, yet strict (0.35 > 1.5x0.2)
    r[3, 5] = 0.04  # weak
    r[4, [0, 2]] = [0.3, 0.25]  # polysemantic, and the largest is not 1.5x the second
    config = IdentifyConfig()
    types = _types(r, config)
    assert types.tolist() == [
        "monosemantic",
        "monosemantic",
        "polysemantic",
        "weak",
        "polysemantic",
    ]
    strict, primary = _strict(r, config)
    assert strict.tolist() == [0, 2] and primary.tolist() == [3, 0]


def test_top_records_lists_the_strongest_activations():
    records, x, sae = _planted()
    z = encode(sae, np.zeros(x.shape[1], dtype=np.float32), x)
    table = top_records(z, records, np.array([0]), k=3)
    assert len(table) == 3 and (table["category"] == DIMENSIONS[0]).all()
    assert table["activation"].is_monotonic_decreasing


def test_chance_mono_ratio_matches_random_features():
    from moralkit.sae.identify import _types, chance_mono_ratio

    rng = np.random.default_rng(0)
    Z, Y = rng.normal(size=(300, 2000)), rng.normal(size=(300, 10))
    share = (_types(feature_correlations(Z, Y), IdentifyConfig()) == "monosemantic").mean()
    # pairs of one foundation also count as monosemantic, so the share sits a bit above
    assert chance_mono_ratio(300) == pytest.approx(share, abs=0.05)
    assert chance_mono_ratio(25_000) < 1e-6
