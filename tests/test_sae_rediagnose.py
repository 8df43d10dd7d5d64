"""Re-diagnosis: five conditions, the surgery's effect (fine-tuned minus pretrained) with paired
intervals per seed and over seeds, and claims that can come out either way."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from synthetic import make_activations, make_records

from moralkit.claims import AGREES, DISAGREES, INCONCLUSIVE, judge_claim, load_claims
from moralkit.results import Gate
from moralkit.sae.rediagnose import RediagnosisConfig, RediagnosisResult, rediagnose


class PlantedSurgery:
    """A stand-in for one seed's LayerSurgery: the "pretrained" stage returns one planted
    layout, the "finetuned" stage another, codes are the two halves of a ReLU split."""

    def __init__(self, seed: int, pre: np.ndarray, ft: np.ndarray, n: int) -> None:
        self.layer, self.seed = 1, seed
        self.folds = np.arange(n) % 2
        self.finetuned = [None, None]
        self.pretrained = SimpleNamespace(cfg=SimpleNamespace(d_sae=2 * pre.shape[1]))
        self._out = {"pretrained": pre, "finetuned": ft}

    def apply(self, x, stage, output, folds=None):
        rec = self._out[stage][: len(x)]
        if output == "reconstruction":
            return rec
        return np.maximum(np.concatenate([rec, -rec], axis=1), 0)


@pytest.fixture(scope="module")
def planted():
    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8, seed=0)
    acts = make_activations(
        records, {1: "opposed", 2: "shared", 0: "opposed"}, n_model_layers=3, width=24, seed=1
    )
    return records, acts


@pytest.mark.slow  # 2 seeds x 5 conditions x 2 diagnostics x 1,000 paired draws (~10 s)
def test_a_planted_separation_is_the_surgerys_effect_and_agrees(planted):
    records, acts = planted
    x = acts.get(0)
    rng = np.random.default_rng(0)
    seeds = [
        PlantedSurgery(s, acts.get(2) + 0.01 * rng.normal(size=x.shape), acts.get(1), len(x))
        for s in (0, 1)
    ]
    config = RediagnosisConfig(which=("categorical", "gradient"), n_bootstrap=1000)
    result = rediagnose(x, records, seeds, config, ground_truth="syn")
    values = result["values"]
    assert set(values["condition"]) == {"original", "pretrained", "finetuned",
                                        "pretrained codes", "finetuned codes"}  # fmt: skip
    v = result.verdicts()
    cat = v[v["diagnostic"] == "categorical"].iloc[0]
    assert cat["comparison"] == "finetuned − pretrained" and cat["verdict"] == "gain"
    d = result["differences"]
    per_seed = d[(d["seed"].astype(str) != "all") & (d["diagnostic"] == "categorical")
                 & (d["comparison"] == "finetuned − pretrained")]  # fmt: skip
    assert cat["ci_low"] == per_seed["ci_low"].min() and cat["ci_high"] == per_seed["ci_high"].max()
    assert cat["difference"] == pytest.approx(per_seed["difference"].mean())
    result.claim_gates = [Gate("sae_reconstruction", True, "planted")]
    claims = {c.claim_id: c for c in result.claim()}
    down = claims["sae_opposing_similarity_down"]
    assert down.value > 0.1 and down.ci_low > 0.1  # the drop of the cosine, oriented
    assert set(down.extra["per_seed"]) == {"0", "1"}
    claim = load_claims()["sae_opposing_similarity_down"]
    entry = {"value": down.value, "ci_low": down.ci_low, "ci_high": down.ci_high,
             "gates": [g.as_dict() for g in down.gates]}  # fmt: skip
    assert judge_claim(claim, entry).verdict == AGREES
    # the same SAEs judged through a failed gate: inconclusive whatever the effect
    result.claim_gates = [Gate("sae_reconstruction", False, "layer 1: explained variance 0.5")]
    gated = {c.claim_id: c for c in result.claim()}["sae_opposing_similarity_down"]
    entry["gates"] = [g.as_dict() for g in gated.gates]
    assert judge_claim(claim, entry).verdict == INCONCLUSIVE


def _result(diff: float, lo: float, hi: float, better: str = "higher") -> RediagnosisResult:
    row = {"ground_truth": "g", "layer": 8, "seed": "all", "comparison": "finetuned − pretrained",
           "baseline": "pretrained", "condition": "finetuned", "diagnostic": "gradient",
           "metric": "spearman_heldout", "baseline_value": 0.2, "value": 0.2 + diff,
           "difference": diff, "ci_low": lo, "ci_high": hi, "better": better, "verdict": "",
           "n_seeds": 3, "seed_min": diff, "seed_max": diff}  # fmt: skip
    tables = {
        "values": pd.DataFrame([{"n_records": 100}]),
        "differences": pd.DataFrame([row]),
        "reconstruction": pd.DataFrame(),
    }
    out = RediagnosisResult(tables, RediagnosisConfig(n_bootstrap=1000))
    out.claim_gates = [Gate("sae_reconstruction", True, "ok")]
    return out


@pytest.mark.parametrize(
    "diff, lo, hi, verdict",
    [(0.3, 0.2, 0.4, AGREES), (0.02, -0.03, 0.07, DISAGREES), (0.1, 0.05, 0.2, INCONCLUSIVE)],
)
def test_sae_typicality_up_can_agree_disagree_or_be_inconclusive(diff, lo, hi, verdict):
    (value,) = [c for c in _result(diff, lo, hi).claim() if c.claim_id == "sae_typicality_up"]
    entry = {"value": value.value, "ci_low": value.ci_low, "ci_high": value.ci_high,
             "gates": [g.as_dict() for g in value.gates]}  # fmt: skip
    assert judge_claim(load_claims()["sae_typicality_up"], entry).verdict == verdict


def test_too_few_resamples_and_no_gated_layer_are_inconclusive():
    few = _result(0.3, 0.2, 0.4)
    few.config = RediagnosisConfig(n_bootstrap=20)
    (value,) = [c for c in few.claim() if c.claim_id == "sae_typicality_up"]
    assert [g.name for g in value.gates if not g.passed] == ["enough_resamples"]
    empty = RediagnosisResult(
        {"values": pd.DataFrame(), "differences": pd.DataFrame(), "reconstruction": pd.DataFrame()},
        RediagnosisConfig(n_bootstrap=1000),
    )
    empty.claim_gates = [Gate("sae_reconstruction", False, "layer 8: explained variance 0.4")]
    claims = empty.claim()
    assert {c.claim_id for c in claims} == {"sae_typicality_up", "sae_opposing_similarity_down"}
    claim = load_claims()["sae_typicality_up"]
    entry = {"value": claims[0].value, "gates": [g.as_dict() for g in claims[0].gates]}
    assert judge_claim(claim, entry).verdict == INCONCLUSIVE


def test_config_checks_its_settings():
    with pytest.raises(ValueError, match="unknown"):
        RediagnosisConfig(which=("nope",))
    with pytest.raises(ValueError, match="n_bootstrap"):
        RediagnosisConfig(n_bootstrap=1)
