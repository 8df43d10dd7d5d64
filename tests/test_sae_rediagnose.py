"""Re-diagnosis: reconstructed activation sets, three conditions, paired verdicts."""

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic import make_activations, make_records

from moralkit.diagnostics import diagnose, headline_table
from moralkit.sae.config import preset
from moralkit.sae.rediagnose import (
    RediagnosisConfig,
    _differences,
    reconstructed_set,
    rediagnose,
)
from moralkit.sae.train import train_sae


@pytest.fixture(scope="module")
def setup():
    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8, seed=0)
    acts = make_activations(records, {1: "opposed", 2: "random"}, n_model_layers=3, width=24)
    x = acts.get(1)
    res = train_sae(x[:300], x[300:], preset("tiny", width=48, epochs=2), progress=False)
    return records, acts, res


def test_reconstructed_set_keeps_layout_and_applies_the_centre(setup):
    records, acts, res = setup
    rec = reconstructed_set(acts, {1: (res.sae, res.centre)})
    assert rec.layers == (1,) and rec.n_model_layers == acts.n_model_layers
    assert rec.get(1).shape == acts.get(1).shape
    with torch.no_grad():
        xc = torch.from_numpy(acts.get(1)[:4] - res.centre)
        expected = res.sae.decode(res.sae.encode(xc)).numpy() + res.centre
    assert np.allclose(rec.get(1)[:4], expected, atol=1e-5)


class PerfectSAE:
    """A lossless "SAE" with 2d latents: relu(x) and relu(-x), decoded as their difference."""

    def encode(self, x):
        return torch.relu(torch.cat([x, -x], dim=-1))

    def decode(self, z):
        d = z.shape[-1] // 2
        return z[..., :d] - z[..., d:]


@pytest.mark.slow  # 2 diagnostics x 3 conditions x 5 resamples
def test_rediagnose_runs_three_conditions_with_paired_intervals(setup):
    records, acts, res = setup
    width = acts.get(1).shape[1]
    saes = {
        "pretrained": {1: (res.sae, res.centre)},
        "finetuned": {1: (PerfectSAE(), np.zeros(width, dtype=np.float32))},
    }
    config = RediagnosisConfig(
        which=("categorical", "gradient"),
        configs={
            "categorical": {"n_permutations": 10, "n_bootstrap": 10},
            "gradient": {"n_bootstrap": 10},
        },
        n_bootstrap=4,
    )
    result = rediagnose(acts, records, saes, config, ground_truth="synthetic")
    heads = result["headlines"]
    assert set(heads["condition"]) == {"original", "pretrained", "finetuned"}
    direct = headline_table(
        diagnose(
            reconstructed_set(acts.select_layers([1]), saes["pretrained"]),
            records,
            which=("categorical",),
            configs={"categorical": config.configs["categorical"]},
        )
    )
    mine = heads[(heads["condition"] == "pretrained") & (heads["diagnostic"] == "categorical")]
    assert np.allclose(mine["value"].to_numpy(), direct["value"].to_numpy(), equal_nan=True)
    diffs = result["differences"].set_index("condition")
    # a lossless reconstruction changes nothing: every difference and interval is exactly 0
    lossless = diffs.loc[["finetuned"]]
    assert (lossless["difference"].dropna() == 0).all() and len(lossless["difference"].dropna())
    assert set(lossless["verdict"]) <= {"no change", "no interval"}
    assert set(diffs["verdict"]) <= {"gain", "loss", "no change", "no interval"}
    assert len(result.verdicts()) == 4  # 2 diagnostics x 2 conditions
    assert result.best().equals(result.verdicts())
    # how much variance each reconstruction keeps, checked by hand
    rec = result["reconstruction"].set_index("condition")
    assert rec.loc["finetuned", "explained_variance"] == pytest.approx(1.0)
    h = acts.get(1)
    alive = (h > 0).any(axis=0).sum() + (h < 0).any(axis=0).sum()  # relu(x), relu(-x) latents
    assert rec.loc["finetuned", "dead_fraction"] == pytest.approx(1 - alive / (2 * width))
    with torch.no_grad():
        z = res.sae.encode(torch.from_numpy(h - res.centre))
        back = res.sae.decode(z).numpy() + res.centre
    kept = 1 - ((h - back) ** 2).sum() / ((h - h.mean(0)) ** 2).sum()
    assert rec.loc["pretrained", "explained_variance"] == pytest.approx(kept, rel=1e-4)
    # the claims: gated on the fine-tuned SAE's reconstruction and on the resamples
    claims = {c.claim_id: c for c in result.claim()}
    gates = {g.name: g for g in claims["sae_typicality_up"].gates}
    # lossless, but latents that never fire on these uncentred activations count as dead
    assert not gates["sae_reconstruction"].passed
    assert "explained variance 1.00, dead 29%" in gates["sae_reconstruction"].detail
    assert not gates["enough_resamples"].passed
    assert "4 resamples" in gates["enough_resamples"].detail
    relaxed = {"min_explained_variance": 0.99, "max_dead_fraction": 0.3, "min_resamples": 4}
    assert all(g.passed for g in result.gates(relaxed))
    strict = {**relaxed, "min_explained_variance": 1.01}
    assert not result.gates(strict)[0].passed
    assert claims["sae_opposing_similarity_down"].value == 0  # no change: no drop


def test_verdicts_follow_the_metric_direction():
    index = pd.MultiIndex.from_tuples(
        [("m", "categorical", "virtue_vice_cosine"), ("m", "gradient", "spearman_heldout")],
        names=["model", "diagnostic", "metric"],
    )
    wide = pd.DataFrame(
        {"original": [0.5, 0.2], "pretrained": [0.5, 0.2], "finetuned": [0.2, 0.1]}, index=index
    )
    rng = np.random.default_rng(0)
    boot = pd.concat([wide + rng.normal(scale=0.01, size=wide.shape) for _ in range(50)])
    d = _differences(wide, boot, 0.95).set_index(["diagnostic", "condition"])
    assert d.loc[("categorical", "finetuned"), "verdict"] == "gain"  # cosine went down
    assert d.loc[("gradient", "finetuned"), "verdict"] == "loss"  # spearman went down
    assert d.loc[("gradient", "pretrained"), "verdict"] == "no change"
