"""The diagnose entry point, headline tables and across-model statistics (paper §3.2
substitute), with planted answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from synthetic import make_activations, make_records

from moralkit.claims import DISAGREES, INCONCLUSIVE, judge_claim, load_claims
from moralkit.diagnostics import (
    DIAGNOSTICS,
    compare_headlines,
    config_class,
    diagnose,
    diagnostic_configs,
    headline_table,
)
from moralkit.diagnostics.across_models import (
    CURVE_COLUMNS,
    AcrossModelsResult,
    across_models,
    compare_conditions,
    compare_models,
    curves_table,
)
from moralkit.diagnostics.categorical import CategoricalConfig
from moralkit.diagnostics.conditions import (
    ConditionConfig,
    ConditionRun,
    matched_subset,
    run_conditions,
)
from moralkit.diagnostics.gradient import GradientConfig
from moralkit.diagnostics.model_statistics import (
    alignment_test,
    paired_condition_test,
    paired_differences,
    scaling_test,
    sign_flip_p,
)
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, claim_settings

FAST = {
    "categorical": CategoricalConfig(n_permutations=10, n_bootstrap=10),
    "gradient": GradientConfig(n_bootstrap=0),
    "structural": {"min_cluster_size": 10, "min_samples": 3, "scale_with_n": False},
    "dimensional": {"probes": ("ridge_cv",), "controls": ()},
}


def _headlines(values: dict[str, float]) -> pd.DataFrame:
    """A headline table with one toy metric per model."""
    return pd.DataFrame(
        [(m, "toy", "score", v, 0, 0.5) for m, v in values.items()],
        columns=["model", "diagnostic", "metric", "value", "layer", "relative_depth"],
    )


@pytest.fixture(scope="module")
def records():
    return make_records(n_per_stratum=6, n_prototypes=10, n_neutral=10)


@pytest.fixture(scope="module")
def diagnosed(records):
    acts = make_activations(records, {0: "shared", 1: "opposed"}, width=16, model_id="toy")
    return diagnose(acts, records, configs=FAST)


# ---------------------------------------------------------------- diagnose


def test_diagnose_runs_all_four_with_one_shape(diagnosed):
    assert list(diagnosed) == list(DIAGNOSTICS)
    for name, result in diagnosed.items():
        assert isinstance(result, AnalysisResult), name
        assert isinstance(result.config, config_class(name))
        assert result.models == ["toy"]
        assert len(result.best()) >= 1
        assert list(result.headline().columns) == list(HEADLINE_COLUMNS)
        assert all(c.claim_id for c in result.claim())
    assert diagnosed["categorical"].config.n_bootstrap == 10  # a config instance passes through
    assert diagnosed["structural"].config.min_samples == 3  # a mapping of fields works too


def test_diagnose_rejects_bad_names_and_configs(records):
    acts = make_activations(records, {0: "random"}, width=8)
    with pytest.raises(ValueError, match="unknown diagnostic"):
        diagnose(acts, records, which=("categorical", "bogus"))
    with pytest.raises(ValueError, match="configs has unknown"):
        diagnose(acts, records, which=("gradient",), configs={"categorial": {}})
    with pytest.raises(ValueError, match="unknown field"):
        diagnose(acts, records, which=("gradient",), configs={"gradient": {"n_boot": 3}})
    with pytest.raises(TypeError, match="GradientConfig"):
        diagnose(acts, records, which=("gradient",), configs={"gradient": CategoricalConfig()})


def test_headline_table_labels_and_compare_headlines(records, diagnosed):
    table = headline_table(diagnosed, condition="before")
    assert list(table.columns) == ["condition", *HEADLINE_COLUMNS]
    assert set(table["diagnostic"]) == set(DIAGNOSTICS)
    vv = table.set_index("metric").loc["virtue_vice_cosine"]
    assert vv["layer"] == 1 and vv["value"] < -0.9  # the opposed layer
    # the same model with the categories no longer opposed anywhere: one call compares
    flat = make_activations(records, {0: "shared", 1: "identical"}, width=16, model_id="toy")
    after = diagnose(
        flat, records, which=("categorical",), configs={"categorical": FAST["categorical"]}
    )
    both = compare_headlines(diagnosed, after, names=("before", "sae"))
    row = both.set_index("metric").loc["virtue_vice_cosine"]
    assert row["value_sae"] > 0.5
    assert row["difference"] == pytest.approx(row["value_sae"] - row["value_before"])
    assert np.isnan(both.set_index("metric").loc["ari_mft15", "value_sae"])  # not re-run


# ---------------------------------------------------------------- curves and conditions


def test_curves_use_headline_metric_names(diagnosed):
    curves = curves_table(diagnosed)
    assert list(curves.columns) == list(CURVE_COLUMNS)
    assert (curves["condition"] == "trained").all()
    heads = headline_table(diagnosed)
    assert set(heads["metric"]) == set(curves["metric"])
    assert len(curves) == 2 * curves["metric"].nunique()  # two layers per metric


def _curve_rows(model, condition, contrast, values):
    return pd.DataFrame(
        {
            "model": model,
            "condition": condition,
            "contrast": contrast,
            "diagnostic": "toy",
            "metric": "score",
            "layer": np.arange(len(values)),
            "relative_depth": np.arange(len(values)) / len(values),
            "value": values,
        }
    )


def test_compare_conditions_pairs_layers_and_detects_a_shift():
    layers = np.arange(12)
    curves = pd.concat(
        [
            _curve_rows("m", "trained", "untrained_twin", 0.6 + 0.01 * layers),
            _curve_rows("m", "untrained_twin", "untrained_twin", 0.1 + 0.01 * layers[::-1]),
        ]
    )
    row = compare_conditions(curves, n_sign_flips=2000).iloc[0]
    assert row["paired_over"] == "layers" and row["n_pairs"] == 12
    assert (row["condition_a"], row["condition_b"]) == ("trained", "untrained_twin")
    assert row["comparison"] == "m: trained − untrained_twin"
    assert row["mean_difference"] == pytest.approx(0.5)
    assert row["p_value"] < 0.001


def test_condition_runs_are_typed_not_encoded_in_labels(records):
    acts = make_activations(records, {0: "opposed", 1: "random"}, width=16, model_id="m")
    calls = []

    def extract(name, subset, **options):
        calls.append(options)
        plan = {0: "none", 1: "none"} if options.get("random_init") else {0: "opposed", 1: "random"}
        twin = make_activations(subset, plan, width=16, seed=9, model_id="hub/id")
        return dataclasses.replace(twin, meta={"random_init": bool(options.get("random_init"))})

    config = ConditionConfig(twin_sample_scale=0.5, prompted_sample_scale=0.5)
    runs = run_conditions(
        records, {"m": acts}, extract, config, has_chat_template=lambda name: True,
        which=("categorical",), configs={"categorical": FAST["categorical"]},
    )  # fmt: skip
    assert [(r.contrast, r.condition) for r in runs] == [
        ("untrained_twin", "untrained_twin"),
        ("untrained_twin", "trained"),
        ("safety_prompt", "safety_prompt"),
        ("safety_prompt", "trained"),
    ]
    assert calls[0]["random_init"] is True and "system_prompt" in calls[1]
    assert all(r.results["categorical"].models == ["m"] for r in runs)  # the plain model name
    groups = pd.DataFrame(
        {"model": ["m"], "family": ["f"], "stage": ["offline"], "params_b": [0.1]}
    )
    diagnosed = {"m": diagnose(acts, records, which=("categorical",), configs=FAST)}
    result = compare_models(diagnosed, groups, runs)
    curves = result["condition_curves"]
    assert set(curves["condition"]) == {"trained", "untrained_twin", "safety_prompt"}
    assert set(curves["model"]) == {"m"}
    tests = result["condition_tests"].set_index(["contrast", "metric"])
    assert set(tests.index.get_level_values("contrast")) == {"untrained_twin", "safety_prompt"}
    with pytest.raises(ValueError, match="condition"):
        ConditionRun("m", "untrained_twin", "twin")


def test_condition_config_selects_twin_models():
    models = ["a", "b", "c"]
    assert ConditionConfig().twin_models(models) == models
    assert ConditionConfig(untrained_twins="none").twin_models(models) == []
    assert ConditionConfig(untrained_twins="c, a").twin_models(models) == ["a", "c"]
    assert ConditionConfig(untrained_twins=["b"]).twin_models(models) == ["b"]
    assert ConditionConfig(untrained_twins=False).twin_models(models) == []


def test_matched_subset_aligns_rows():
    records = make_records(n_per_stratum=20, n_prototypes=20, n_neutral=20)
    acts = make_activations(records, {0: "random"}, width=8)
    subset, sub_acts = matched_subset(records, acts, sample_scale=0.02, seed=1)
    assert 0 < len(subset) < len(records)
    assert sub_acts.n_texts == len(subset)
    rows = records.table.reset_index().set_index("record_id").loc[subset.table["record_id"]]
    assert np.allclose(sub_acts.get(0), acts.get(0)[rows["index"].to_numpy()])


# ---------------------------------------------------------------- compare_models and claims


def _diagnosed_family(records, n_models: int) -> tuple[dict, pd.DataFrame]:
    diagnosed, rows = {}, []
    for i in range(n_models):
        for stage in ("base", "instruct"):
            name = f"fam{i}-{stage}"
            plan = {0: "opposed" if stage == "instruct" else "random", 1: "shared"}
            acts = make_activations(records, plan, width=16, seed=i, model_id=name)
            diagnosed[name] = diagnose(acts, records, which=("categorical",), configs=FAST)
            rows.append((name, f"fam{i}", stage, 0.5 * 2**i))
    groups = pd.DataFrame(rows, columns=["model", "family", "stage", "params_b"])
    return diagnosed, groups


def test_compare_models_tables_and_claim_thresholds_from_claims_yaml(records):
    diagnosed, groups = _diagnosed_family(records, 6)
    result = compare_models(diagnosed, groups)
    assert isinstance(result, AcrossModelsResult)
    heads = result.best()
    assert set(heads["stage"]) == {"base", "instruct"}
    assert set(result["scaling"]["stage"]) == {"base", "instruct"}
    assert (result["scaling"]["n"] == 6).all()
    assert set(result["alignment"]["n_pairs"]) == {6}
    claims = {c.claim_id: c for c in result.claim()}
    assert claims["n_models"].value == 12
    # instruct models are planted with opposed centres: a consistent shift in every family
    align = result["alignment"].set_index("metric").loc["virtue_vice_cosine"]
    assert align["p_value"] < 0.05
    shift = result["pairs"].query("metric == 'virtue_vice_cosine'")["difference"]
    got = claims["alignment_no_effect"]
    assert got.value == pytest.approx(abs(shift.mean()), abs=1e-4)  # the largest |mean shift|
    assert got.gates[0].name == "enough_pairs" and got.gates[0].passed
    verdict = judge_claim(load_claims()["alignment_no_effect"], _paper(got))
    assert verdict.verdict == DISAGREES  # a shift far beyond the margin of 0.1
    # scale: Theil–Sen change across each stage's ladder, written out as a loop here
    scale = claims["scale_no_effect"]
    heads = result.best()
    changes = []
    for _, g in heads[heads["metric"] == "virtue_vice_cosine"].groupby("stage"):
        x = np.log10(g["params_b"].to_numpy())
        y = g["value"].to_numpy()
        slopes = [
            (y[j] - y[i]) / (x[j] - x[i])
            for i in range(len(x))
            for j in range(i + 1, len(x))
            if x[j] != x[i]
        ]
        changes.append(abs(np.median(slopes) * (x.max() - x.min())))
    assert scale.value >= max(changes) - 1e-4  # other claimed headlines may change more
    assert scale.gates[0].passed and scale.ci_low <= scale.value <= scale.ci_high


def _paper(claim) -> dict:
    return {"value": claim.value, "profile": "paper", **claim.fields()}


def test_too_few_models_make_scale_and_alignment_inconclusive(records):
    diagnosed, groups = _diagnosed_family(records, 2)
    claims = {c.claim_id: c for c in compare_models(diagnosed, groups).claim()}
    assert set(claims) == {"n_models", "scale_no_effect", "alignment_no_effect"}
    for claim_id, gate in (
        ("scale_no_effect", "enough_models"),
        ("alignment_no_effect", "enough_pairs"),
    ):
        got = claims[claim_id]
        assert got.gates[0].name == gate and not got.gates[0].passed
        verdict = judge_claim(load_claims()[claim_id], _paper(got))
        assert verdict.verdict == INCONCLUSIVE and "need" in verdict.reason
    with pytest.raises(ValueError, match="groups lacks"):
        compare_models(diagnosed, groups.iloc[:1])


def test_claim_settings_name_the_missing_claim():
    assert claim_settings("scale_no_effect")["min_models"] >= 1
    with pytest.raises(KeyError, match="no_such_claim"):
        claim_settings("no_such_claim")
    with pytest.raises(KeyError, match="measure"):
        claim_settings("n_models")


def test_scaling_test_recovers_a_monotone_relation():
    params = {f"m{i}": p for i, p in enumerate([0.1, 0.5, 1, 4, 8, 14, 32])}
    heads = _headlines({m: np.log10(p) * 0.2 + 0.1 for m, p in params.items()})
    out = scaling_test(heads, params, n_bootstrap=500).iloc[0]
    assert out["n"] == 7
    assert out["spearman"] == pytest.approx(1.0)
    assert out["ci_low"] == pytest.approx(1.0)
    assert out["p_value"] < 0.01
    assert out["note"] == ""


def test_scaling_test_no_relation_and_small_n():
    rng = np.random.default_rng(0)
    params = {f"m{i}": float(p) for i, p in enumerate(np.geomspace(0.1, 200, 12))}
    heads = _headlines({m: rng.normal() for m in params})
    out = scaling_test(heads, params, n_bootstrap=500).iloc[0]
    assert out["ci_low"] < 0 < out["ci_high"] or out["p_value"] > 0.05
    small = scaling_test(_headlines({"a": 1.0, "b": 2.0, "c": 3.0}), {"a": 1, "b": 2, "c": 3})
    assert "no inference" in small["note"].iloc[0]
    assert np.isnan(small["ci_low"].iloc[0])


def test_alignment_test_detects_a_consistent_shift():
    rng = np.random.default_rng(1)
    families = [f"fam{i}" for i in range(8)]
    base = {f"{f}-base": rng.normal() for f in families}
    values = {**base, **{f"{f}-instruct": base[f"{f}-base"] + 0.5 for f in families}}
    groups = {m: (m.rsplit("-", 1)[0], m.rsplit("-", 1)[1]) for m in values}
    out = alignment_test(_headlines(values), groups, contrasts=[("instruct", "base")])
    row = out.iloc[0]
    assert row["n_pairs"] == 8
    assert row["mean_difference"] == pytest.approx(0.5)
    assert row["p_value"] == pytest.approx(2 / 2**8)  # exact: only the all-positive patterns


def test_alignment_test_no_shift_gives_large_p():
    rng = np.random.default_rng(2)
    families = [f"fam{i}" for i in range(10)]
    base = {f"{f}-base": rng.normal() for f in families}
    noise = rng.normal(0, 0.1, len(families))
    noise -= noise.mean()  # zero mean shift by construction
    values = {**base}
    values.update(
        {f"{f}-instruct": base[f"{f}-base"] + e for f, e in zip(families, noise, strict=True)}
    )
    groups = {m: tuple(m.rsplit("-", 1)) for m in values}
    out = alignment_test(_headlines(values), groups, contrasts=[("instruct", "base")])
    assert out["p_value"].iloc[0] > 0.5


def test_paired_differences_pairs_within_family_only():
    values = {"a-base": 1.0, "a-instruct": 3.0, "b-instruct": 5.0, "b-guard": 4.0}
    groups = pd.DataFrame(
        [(m, *m.split("-")) for m in values], columns=["model", "family", "stage"]
    )
    diffs = paired_differences(_headlines(values), groups)
    assert len(diffs) == 2
    got = diffs.set_index("contrast")["difference"]
    assert got["instruct − base"] == pytest.approx(2.0)
    assert got["guard − instruct"] == pytest.approx(-1.0)


def test_sign_flip_exact_and_monte_carlo_agree():
    d = np.array([0.3, 0.5, -0.1, 0.4, 0.2, 0.6, 0.1, 0.35, -0.05, 0.25, 0.3, 0.2, 0.15, 0.4])
    exact = sign_flip_p(d)
    mc = sign_flip_p(np.concatenate([d, d, d]) / 1.0, n_permutations=20000)
    assert exact < 0.01 and mc < 0.01
    assert sign_flip_p([1.0]) == 1.0


def test_paired_condition_test():
    layers = np.arange(20)
    trained = 0.5 + 0.01 * layers
    shifted = paired_condition_test(trained, trained - 0.2, n_permutations=5000)
    assert shifted["mean_difference"] == pytest.approx(0.2)
    assert shifted["p_value"] < 0.001
    assert shifted["ci_low"] == pytest.approx(0.2) and shifted["ci_high"] == pytest.approx(0.2)
    rng = np.random.default_rng(3)
    same = paired_condition_test(trained, trained + rng.normal(0, 0.05, 20))
    assert same["p_value"] > 0.05
    assert same["ci_low"] < 0 < same["ci_high"]
    with pytest.raises(ValueError, match="shape"):
        paired_condition_test([1, 2, 3], [1, 2])


def test_figures_render_with_reader_titles(records):
    import matplotlib.pyplot as plt

    from moralkit.figures.across_models import (
        plot_condition_differences,
        plot_headline_curves,
        plot_paired_differences,
        plot_scaling,
    )

    diagnosed, groups = _diagnosed_family(records, 2)
    result = compare_models(diagnosed, groups)
    curves = result["curves"]
    fig = plot_headline_curves(curves)
    titles = [ax.get_title() for ax in fig.axes]
    assert "Virtue–vice centre cosine" in titles
    assert not any("_" in t for t in titles)  # reader titles, not column names
    plt.close(fig)
    layers = np.arange(6)
    conditions = pd.concat(
        [
            _curve_rows("m", "trained", "untrained_twin", 0.5 + 0 * layers),
            _curve_rows("m", "untrained_twin", "untrained_twin", 0.1 + 0.01 * layers),
        ]
    )
    fig = plot_headline_curves(conditions)
    labels = fig.legends[0].get_texts()
    assert {t.get_text() for t in labels} == {"m · trained", "m · untrained twin"}
    plt.close(fig)
    for fig in (
        plot_scaling(
            result["headlines"], {"fam0-base": 0.5, "fam1-base": 1.0}, "virtue_vice_cosine"
        ),
        plot_paired_differences(result["pairs"]),
        plot_condition_differences(compare_conditions(conditions)),
    ):
        plt.close(fig)


def test_model_groups_pairs_paper_models():
    from moralkit.diagnostics.across_models import model_groups

    groups = model_groups(["qwen3-8b-base", "qwen3-8b", "qwen3guard-gen-8b", "qwen3-4b"])
    assert groups["stage"].tolist() == ["base", "instruct", "guard", "instruct"]
    assert groups["family"].nunique() == 2
    values = {"qwen3-8b-base": 0.2, "qwen3-8b": 0.5, "qwen3guard-gen-8b": 0.4, "qwen3-4b": 0.9}
    diffs = paired_differences(_headlines(values), groups).set_index("contrast")
    assert diffs.loc["instruct − base", "difference"] == pytest.approx(0.3)
    assert diffs.loc["guard − instruct", "difference"] == pytest.approx(-0.1)
    with pytest.raises(KeyError, match="unknown model"):
        model_groups(["no-such-model"])


def test_diagnostic_configs_come_from_a_chapters_parameters():
    params = {"n_permutations": 30, "n_bootstrap": 2, "seed": 5, "pooling": "last",
              "structural_permutations": 2, "probes": ("ridge_cv",), "layers": None}  # fmt: skip
    names = {"structural": {"n_permutations": "structural_permutations"}}
    configs = diagnostic_configs(params, param_names=names)
    assert list(configs) == list(DIAGNOSTICS)
    assert configs["categorical"] == CategoricalConfig(
        n_permutations=30, n_bootstrap=2, seed=5, pooling="last"
    )
    assert configs["gradient"] == GradientConfig(n_bootstrap=2, seed=5, pooling="last")
    assert configs["structural"].n_permutations == 2 and configs["dimensional"].probes == (
        "ridge_cv",
    )
    assert list(diagnostic_configs(params, ("gradient",))) == ["gradient"]


def test_across_models_runs_the_chapters_steps_from_its_parameters(records):
    """Chapter 06's recipe: every model extracted and diagnosed, the offline model's twin on a
    subset (seeded by the chapter's seed), compared with settings from the parameters."""
    calls = []

    def extract(name, recs, **options):
        calls.append((name, len(recs), options))
        plan = {0: "none", 1: "none"} if options.get("random_init") else {0: "opposed", 1: "random"}
        return make_activations(recs, plan, width=16, seed=len(calls), model_id=name)

    params = {"seed": 3, "n_permutations": 10, "n_bootstrap": 2, "twin_sample_scale": 0.5,
              "prompted_alignment": False, "n_sign_flips": 100}  # fmt: skip
    result = across_models(["smollm2-135m"], records, extract, params)
    assert calls[0] == ("smollm2-135m", len(records), {})
    assert calls[1][0] == "smollm2-135m" and calls[1][2] == {"random_init": True, "seed": 3}
    assert len(calls) == 2  # prompted_alignment off: no safety-prompt extraction
    assert set(result["headlines"]["diagnostic"]) == {"categorical", "gradient"}
    assert set(result["condition_curves"]["contrast"]) == {"untrained_twin"}
    assert result.config.seed == 3 and result.config.n_sign_flips == 100
