"""Partition agreement (moralkit.diagnostics.cluster_agreement) against sklearn and known cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from moralkit.diagnostics.cluster_agreement import (
    ari_from_counts,
    ari_interval,
    ari_permutation_test,
    clustering_stability,
    fast_ari,
)


@pytest.mark.parametrize("seed", range(5))
def test_fast_ari_equals_sklearn(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 6, 400)
    b = np.where(rng.random(400) < 0.4, a, rng.integers(0, 9, 400))
    assert fast_ari(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)


def test_fast_ari_special_cases():
    assert fast_ari(np.zeros(6), np.zeros(6)) == adjusted_rand_score(np.zeros(6), np.zeros(6))
    assert fast_ari(np.arange(6), np.arange(6)) == 1.0
    assert np.isnan(fast_ari(np.zeros(1), np.zeros(1)))
    labels = np.array(["x", "y", "x", "z"])
    assert fast_ari(labels, np.array([3, 1, 3, 2])) == 1.0  # any label type


def test_tied_pairs_are_left_out_of_every_count():
    """A point drawn twice makes one pair that agrees by construction; with ``tied`` it counts
    as nothing, so the ARI of a table with a duplicated point equals the ARI without it when
    that point is alone in both partitions."""
    table = np.array([[2.0, 0.0], [0.0, 3.0]])  # points 0,1 identical copies in cell (0, 0)
    assert ari_from_counts(table, tied=1.0) == pytest.approx(
        adjusted_rand_score([0, 1, 1, 1], [0, 1, 1, 1]), abs=1e-12
    )


def test_ari_interval_brackets_the_estimate_without_upward_bias():
    rng = np.random.default_rng(0)
    for agreement in (0.0, 0.1, 0.4):
        a = rng.integers(0, 15, 2000)
        b = np.where(rng.random(2000) < agreement, a, rng.integers(0, 20, 2000))
        low, high = ari_interval(a, b, 1000, np.random.default_rng(1))
        assert low <= fast_ari(a, b) <= high
    assert (
        ari_interval(np.zeros(1), np.zeros(1), 100, rng)
        == (pytest.approx(np.nan, nan_ok=True),) * 2
    )


def test_permutation_p_is_small_for_agreement_and_uniform_for_none():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 4, 300)
    _, p_same = ari_permutation_test(a, a, 99, rng)
    assert p_same == pytest.approx(0.01)
    ps = [ari_permutation_test(a, rng.integers(0, 5, 300), 99, rng)[1] for _ in range(200)]
    assert np.mean(np.array(ps) < 0.05) == pytest.approx(0.05, abs=0.04)


def test_stability_of_deterministic_and_order_dependent_clusterings():
    X = np.random.default_rng(3).normal(size=(60, 2))

    def by_sign(data):  # order-free: a point's label depends on the point only
        return (data[:, 0] > 0).astype(int)

    def by_position(data):  # order-dependent: the first half of the rows is one cluster
        return (np.arange(len(data)) < len(data) // 2).astype(int)

    assert clustering_stability(X, by_sign, 3, seed=0) == pytest.approx([1.0, 1.0, 1.0])
    assert clustering_stability(X, by_position, 3, seed=0).max() < 0.3
    assert clustering_stability(X, by_sign, 0).size == 0
