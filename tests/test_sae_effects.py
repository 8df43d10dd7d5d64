"""The SAE effects' metrics are the diagnostics' own headlines, and their bootstrap is paired."""

import numpy as np
import pytest
from synthetic import make_activations, make_records

from moralkit.diagnostics import diagnose, headline_table
from moralkit.sae.effects import EFFECT_METRICS, applicable, metric_draws, record_draws


@pytest.fixture(scope="module")
def data():
    records = make_records(n_per_stratum=4, n_prototypes=8, n_neutral=8, seed=0)
    acts = make_activations(records, {1: "opposed", 2: "shared"}, n_model_layers=3, width=24)
    return records, acts


@pytest.mark.slow  # the four diagnostics once, HDBSCAN and the ridge probe included (~10 s)
def test_each_estimate_is_the_diagnostics_own_headline(data):
    records, acts = data
    seed = 3
    configs = {
        "categorical": {"layers": [1], "n_permutations": 2, "n_bootstrap": 2, "seed": seed},
        "gradient": {"layers": [1], "variants": ("heldout",), "n_bootstrap": 0, "seed": seed},
        "structural": {"layers": [1], "n_permutations": 1, "seed": seed},
        "dimensional": {"layers": [1], "probes": ("ridge_cv",), "controls": (), "seed": seed},
    }
    heads = headline_table(diagnose(acts, records, configs=configs)).set_index("metric")["value"]
    draws = record_draws(records, 20, seed=seed)
    got = metric_draws(acts.get(1), records, draws, list(EFFECT_METRICS), seed=seed)
    for name, (metric, _) in EFFECT_METRICS.items():
        assert got[name].estimate == pytest.approx(heads[metric], abs=1e-9), name
        assert got[name].draws.shape == (20,) and np.isfinite(got[name].draws).all()


def test_draws_are_paired_and_keep_every_strata_size(data):
    records, acts = data
    draws = record_draws(records, 50, seed=1)
    table = records.table
    for row in draws[:5]:
        drawn = table.iloc[row]
        assert (
            drawn.groupby(["category", "is_prototype"])
            .size()
            .equals(table.groupby(["category", "is_prototype"]).size())
        )
    x = acts.get(1)
    which = ("categorical", "gradient")
    a = metric_draws(x, records, draws, which, seed=1)
    b = metric_draws(x.copy(), records, draws, which, seed=1)
    for name in which:  # the same vectors on the same draws: every paired difference is 0
        assert np.array_equal(a[name].draws, b[name].draws)


def test_a_planted_separation_is_seen_with_an_interval_that_excludes_zero(data):
    records, acts = data
    draws = record_draws(records, 200, seed=0)
    which = ("categorical", "gradient")
    opposed = metric_draws(acts.get(1), records, draws, which)
    shared = metric_draws(acts.get(2), records, draws, which)
    diff = opposed["categorical"].draws - shared["categorical"].draws
    assert opposed["categorical"].estimate < shared["categorical"].estimate
    assert np.quantile(diff, 0.975) < 0


def test_diagnostics_that_do_not_apply_are_left_out(data):
    records, _ = data
    virtue_only = records.where(records.table["pole"] != "vice")
    assert applicable(virtue_only, list(EFFECT_METRICS)) == [
        "gradient",
        "structural",
        "dimensional",
    ]
    flat = type(records)(records.table, {**records.provenance, "has_typicality": False})
    assert "gradient" not in applicable(flat, list(EFFECT_METRICS))
