"""Reconstruction reports and the gate: explained variance cannot pass on one dimension."""

import numpy as np
import pytest

from moralkit.sae.metrics import passes_gate, reconstruction_gate, reconstruction_report

SETTINGS = {"min_explained_variance": 0.8, "max_dead_fraction": 0.1}


def _massive(n: int = 400, d: int = 16, seed: int = 0) -> np.ndarray:
    """Activations whose first dimension carries most of the variance (a massive activation)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    x[:, 0] *= 10.0
    return x


def test_an_sae_that_only_keeps_the_massive_direction_fails_the_second_variance():
    x = _massive()
    only_top = np.zeros_like(x)
    only_top[:, 0] = x[:, 0]  # perfect on the dominant dimension, nothing else
    codes = np.abs(only_top[:, :1]) + 1.0  # one latent, always firing
    rep = reconstruction_report(x, only_top, codes)
    assert rep["top_direction_share"] > 0.8
    assert rep["explained_variance"] > 0.8  # the plain number would pass ...
    assert rep["explained_variance_rest"] == pytest.approx(0.0, abs=0.05)  # ... this cannot
    row = {**rep, "dead_fraction": 0.0}
    assert not passes_gate(row, SETTINGS)


def test_a_faithful_reconstruction_passes_and_dead_latents_fail():
    x = _massive()
    rng = np.random.default_rng(1)
    close = x + 0.05 * rng.normal(size=x.shape)
    codes = np.concatenate([np.abs(x), np.zeros((len(x), 4))], axis=1)  # 4 of 20 never fire
    rep = reconstruction_report(x, close, codes)
    assert rep["explained_variance"] > 0.99 and rep["explained_variance_rest"] > 0.95
    assert rep["dead"] == 4 and rep["l0"] == pytest.approx(16.0)
    assert passes_gate({**rep, "dead_fraction": 0.0}, SETTINGS)
    assert not passes_gate({**rep, "dead_fraction": 4 / 20}, SETTINGS)
    assert not passes_gate({**rep, "dead_fraction": float("nan")}, SETTINGS)


def test_the_gate_names_every_sae_and_the_thresholds():
    rows = [
        {"label": "seed 0 pretrained", "explained_variance": 0.9,
         "explained_variance_rest": 0.85, "dead_fraction": 0.01},
        {"label": "seed 1 pretrained", "explained_variance": 0.9,
         "explained_variance_rest": 0.7, "dead_fraction": 0.01},
    ]  # fmt: skip
    gate = reconstruction_gate(rows, SETTINGS, "layer 8: ")
    assert gate.name == "sae_reconstruction" and not gate.passed
    assert "seed 1 pretrained" in gate.detail and "0.70 without the top direction" in gate.detail
    assert reconstruction_gate(rows[:1], SETTINGS).passed
    assert not reconstruction_gate([], SETTINGS).passed


def test_dead_and_dense_latents_are_counted_at_their_boundaries():
    x = np.random.default_rng(0).normal(size=(4, 3))
    codes = np.zeros((4, 3))
    codes[:2, 1] = 1.0  # fires on exactly half the rows: not dense
    codes[:3, 2] = 0.5  # fires on three of four rows: dense
    report = reconstruction_report(x, x, codes)
    assert report["dead"] == 1  # latent 0 never fires
    assert report["dense"] == 1
    assert report["l0"] == pytest.approx(5 / 4)
