"""Replication across ground truths (chapter 11) on synthetic activations with planted answers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from synthetic import make_activations, make_records

from moralkit.claims import AGREES, DISAGREES, INCONCLUSIVE, judge_claim, load_claims
from moralkit.diagnostics import DIAGNOSTICS
from moralkit.foundations import DIMENSIONS, dimension_of
from moralkit.records import MoralRecords
from moralkit.replication import (
    FAILS,
    HOLDS,
    NOT_APPLICABLE,
    REPLICATION_CLAIMS,
    UNDECIDED,
    VERDICT_COLUMNS,
    ReplicationConfig,
    ReplicationResult,
    agreement_table,
    lexicon_agreement,
    replication,
    signed_ratings,
    spearman_interval,
)

FAST = {
    "categorical": {"n_permutations": 30, "n_bootstrap": 30},
    "gradient": {"n_bootstrap": 30},
    "structural": {"n_permutations": 1},
    "dimensional": {"probes": ("ridge_cv",), "controls": ()},
}


def dictionary_like(records: MoralRecords) -> MoralRecords:
    """The same records as a dictionary without typicality: every polar record a prototype."""
    t = records.table[records.table["pole"] != "neutral"].copy()
    t["typicality"] = 1.0
    t["is_prototype"] = True
    t["stratum"] = t["pole"] + "_typical"
    for d in DIMENSIONS:
        t[d] = np.where(t["category"] == d, 1.0, 0.0)
    return MoralRecords(t, {"has_typicality": False})


@pytest.fixture(scope="module")
def replicated(one_torch_thread):
    graded = make_records(n_per_stratum=10, n_prototypes=20, n_neutral=20)
    plain = dictionary_like(graded)
    records = {"signal": graded, "noise": graded, "dictionary": plain}
    acts = {
        ("m", "signal"): make_activations(graded, {0: "random", 1: "random"}, signal=3.0),
        ("m", "noise"): make_activations(graded, {0: "none", 1: "none"}, seed=1),
        ("m", "dictionary"): make_activations(plain, {0: "random", 1: "random"}, signal=3.0),
    }
    # "signal" and "noise" share records: tell the loader which run it serves
    order = iter(["signal", "noise", "dictionary"])

    def load(model, recs):
        return dataclasses.replace(acts[(model, next(order))], model_id=model)

    config = ReplicationConfig(configs=FAST)
    return replication(["m"], records, load, config, progress=False)


def test_verdict_table_shape_and_not_applicable(replicated):
    v = replicated["verdicts"]
    assert list(v.columns) == list(VERDICT_COLUMNS)
    assert len(v) == 3 * 4
    assert set(v["verdict"]) <= {HOLDS, FAILS, UNDECIDED, NOT_APPLICABLE, "not checkable"}
    gradient = v[v["diagnostic"] == "gradient"].set_index("ground_truth")
    assert gradient.loc["dictionary", "verdict"] == NOT_APPLICABLE
    assert (v.loc[v["verdict"] != NOT_APPLICABLE, "value"].notna()).all()
    # each cell's verdict is the claims page's judgement of the measurement stored with it
    words = {AGREES: HOLDS, DISAGREES: FAILS, INCONCLUSIVE: UNDECIDED}
    claims = load_claims()
    for row in v[v["verdict"] != NOT_APPLICABLE].itertuples():
        again = judge_claim(claims[row.claim_id], json.loads(row.measurement))
        assert row.verdict == words.get(again.verdict, "not checkable")
        assert row.reason == again.reason and row.reason


def test_planted_signal_breaks_indifference_and_noise_keeps_it(replicated):
    v = replicated["verdicts"].set_index(["ground_truth", "diagnostic"])
    # strong, linearly decodable, well separated categories: no indifference
    assert v.loc[("signal", "dimensional"), "verdict"] == FAILS
    assert v.loc[("signal", "structural"), "verdict"] == FAILS
    assert v.loc[("signal", "dimensional"), "value"] > 0.9
    # pure noise: nothing to decode or cluster, so never "fails" (it holds, or is inconclusive
    # where the small sample could not have seen an effect of the margin's size)
    assert v.loc[("noise", "dimensional"), "verdict"] in (HOLDS, UNDECIDED)
    assert v.loc[("noise", "structural"), "verdict"] in (HOLDS, UNDECIDED)
    agreement = replicated["agreement"].set_index("diagnostic")
    # the dictionary-like run plants the same decodable signal (signal=3.0): with intervals
    # recorded by the diagnostic, its R² interval lies above the margin too
    assert agreement.loc["dimensional", "fails_on"] == "signal, dictionary"
    assert "signal" not in agreement.loc["dimensional", "holds_on"]
    assert agreement.loc["gradient", "not_applicable_on"] == "dictionary"
    assert agreement.loc["gradient", "n_ground_truths"] == 2


def test_claims_count_ground_truths_where_every_model_holds():
    rows = []
    inside = {"value": 0.1, "ci_low": 0.05, "ci_high": 0.15}  # margin 0.3: agrees
    above = {"value": 0.6, "ci_low": 0.5, "ci_high": 0.7}  # wholly above: disagrees
    straddles = {"value": 0.3, "ci_low": 0.2, "ci_high": 0.4}
    for model, gt, verdict, measured in [
        ("a", "x", HOLDS, inside),
        ("b", "x", HOLDS, inside),
        ("a", "y", HOLDS, inside),
        ("b", "y", FAILS, above),
        ("a", "z", FAILS, above),
        ("b", "z", FAILS, above),
        ("a", "v", UNDECIDED, straddles),
        ("b", "v", UNDECIDED, straddles),
        ("a", "w", NOT_APPLICABLE, None),
        ("b", "w", NOT_APPLICABLE, None),
    ]:
        row = {c: np.nan for c in VERDICT_COLUMNS}
        row.update(model=model, ground_truth=gt, diagnostic="gradient", verdict=verdict)
        row["measurement"] = json.dumps(measured) if measured else ""
        rows.append(row)
    verdicts = pd.DataFrame(rows)
    result = ReplicationResult({"verdicts": verdicts, "agreement": agreement_table(verdicts)})
    (claim,) = result.claim()
    assert claim.claim_id == REPLICATION_CLAIMS["gradient"] == "replication_gradient"
    assert claim.claim_id in load_claims()
    assert claim.value == 1
    assert claim.extra["holds_on"] == ["x"] and claim.extra["fails_on"] == ["z"]
    assert claim.extra["mixed_on"] == ["y"] and claim.extra["not_applicable_on"] == ["w"]
    assert claim.extra["inconclusive_on"] == ["v"]
    assert claim.extra["n_ground_truths"] == 4
    assert sorted(claim.extra["cells"]) == sorted(f"{m} · {g}" for m in "ab" for g in "xyzv")
    # judged cell by cell with the gradient claim's margin: a failing cell makes it disagree
    check = load_claims()["replication_gradient"]
    assert judge_claim(check, {"value": 1, **claim.extra}).verdict == DISAGREES
    agreeing = {k: c for k, c in claim.extra["cells"].items() if k.endswith("x")}
    assert judge_claim(check, {"value": 1, "cells": agreeing}).verdict == AGREES
    open_ = {k: c for k, c in claim.extra["cells"].items() if k[-1] in "xv"}
    assert judge_claim(check, {"value": 1, "cells": open_}).verdict == INCONCLUSIVE
    assert claim.extra["per_model"]["b"] == {
        "x": HOLDS,
        "y": FAILS,
        "z": FAILS,
        "v": UNDECIDED,
        "w": NOT_APPLICABLE,
    }
    agreement = result["agreement"].set_index("model")
    assert agreement.loc["a", "holds"] == 2 and not agreement.loc["a", "agree"]


def lexicon(words: dict[tuple[str, str], float], name: str) -> MoralRecords:
    """Records from ``{(word, foundation): signed typicality}``."""
    base = make_records(n_per_stratum=1, n_prototypes=1, n_neutral=1).table.iloc[:0]
    rows = []
    for i, ((word, foundation), rating) in enumerate(words.items()):
        pole = "virtue" if rating > 0 else "vice" if rating < 0 else "neutral"
        rows.append(
            {
                "record_id": f"{name}{i}",
                "source_id": f"{name}{i}",
                "source": name,
                "text": word,
                "foundation": foundation,
                "pole": pole,
                "category": pole if pole == "neutral" else dimension_of(foundation, pole),
                "typicality": abs(rating),
                "is_prototype": False,
                "stratum": pole,
                "split": "train",
            }
        )
    table = pd.concat([base, pd.DataFrame(rows)], ignore_index=True).fillna(0.0)
    return MoralRecords(table, {"ground_truth": name})


def test_lexicon_agreement_by_hand():
    strata = [0.125, 0.25, 0.375, 0.5, 0.75, 1.0]
    ratings = {(f"w{i}", "care"): (strata[i % 6] * (1 if i % 2 else -1)) for i in range(24)}
    a = lexicon(ratings, "a")
    b = lexicon({k: -v for k, v in ratings.items()}, "b")  # every word on the other pole
    c = lexicon({("W0", "care"): ratings[("w0", "care")]} | {("x", "care"): 0.5}, "c")
    table = lexicon_agreement({"a": a, "b": b, "c": c}, min_shared_words=10)
    rows = table.set_index(["lexicon_a", "lexicon_b", "foundation"])
    ab = rows.loc[("a", "b", "all")]
    assert ab["n_shared"] == 24 and ab["spearman"] == pytest.approx(-1.0)
    assert ab["same_pole"] == 0.0 and ab["ci_high"] < 0
    assert rows.loc[("a", "b", "care"), "n_shared"] == 24
    assert rows.loc[("a", "b", "loyalty"), "n_shared"] == 0
    ac = rows.loc[("a", "c", "all")]
    assert ac["n_shared"] == 1 and np.isnan(ac["spearman"])  # case-insensitive match, too few
    assert signed_ratings(c)["word"].tolist() == ["w0", "x"]


def test_spearman_interval():
    low, high = spearman_interval(0.5, 103)
    half = 1.959964 * np.sqrt(1.06 / 100)
    assert low == pytest.approx(np.tanh(np.arctanh(0.5) - half), abs=1e-6)
    assert high == pytest.approx(np.tanh(np.arctanh(0.5) + half), abs=1e-6)
    assert all(np.isnan(x) for x in spearman_interval(0.5, 3))


def test_config_from_the_chapters_parameters():
    params = {"n_permutations": 30, "n_bootstrap": 20, "structural_permutations": 1,
              "probes": ("ridge_cv",), "controls": (), "seed": 4}  # fmt: skip
    config = ReplicationConfig.from_parameters(params)
    assert config.diagnostics == DIAGNOSTICS and list(config.configs) == list(DIAGNOSTICS)
    assert config.configs["categorical"].n_permutations == 30
    assert config.configs["structural"].n_permutations == 1  # structural_permutations
    assert config.configs["dimensional"].controls == () and config.configs["gradient"].seed == 4


def test_config_is_checked():
    with pytest.raises(ValueError, match="unknown"):
        ReplicationConfig(diagnostics=("categorical", "vibes"))
    with pytest.raises(ValueError, match="replication needs"):
        replication([], {}, lambda m, r: None)


def test_figures(replicated):
    from matplotlib.figure import Figure

    from moralkit.figures.replication import plot_lexicon_agreement, plot_replication

    fig = plot_replication(replicated["verdicts"])
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 4 and all("_" not in t for t in titles)  # readers' titles
    assert any(t.get_text() == "n/a" for ax in fig.axes for t in ax.texts)  # gradient, dictionary
    strata = [0.125, 0.25, 0.375, 0.5, 0.75, 1.0]
    words = {(f"w{i}", "care"): strata[i % 6] * (1 if i % 2 else -1) for i in range(12)}
    table = lexicon_agreement({"a": lexicon(words, "a"), "b": lexicon(words, "b")})
    assert isinstance(plot_lexicon_agreement(table), Figure)
    with pytest.raises(ValueError, match="lacks columns"):
        plot_replication(table)
    # a basic bootstrap interval may exclude its estimate: still drawn (the quick build's case)
    shifted = replicated["verdicts"].copy()
    finite = shifted["ci_low"].astype(float).notna()
    shifted.loc[finite, "ci_low"] = shifted.loc[finite, "value"].astype(float) + 0.01
    shifted.loc[finite, "ci_high"] = shifted.loc[finite, "value"].astype(float) + 0.02
    assert finite.any() and isinstance(plot_replication(shifted), Figure)


def test_real_lexicons_agree_more_than_chance(offline_mirror):
    from moralkit.data import load_records

    names = ["moralstrength", "emfd", "mfd2", "mfd"]
    table = lexicon_agreement({g: load_records(g) for g in names})
    pooled = table[table["foundation"] == "all"].set_index(["lexicon_a", "lexicon_b"])
    assert len(pooled) == 6 and (pooled["n_shared"] >= 100).all()
    assert (pooled["ci_low"] > 0).all()  # every pair agrees beyond chance on shared words
    assert (pooled["same_pole"] > 0.75).all()


def test_verdict_matrix(replicated):
    from moralkit.replication import verdict_matrix

    wide = verdict_matrix(replicated["verdicts"])
    assert list(wide.columns) == ["signal", "noise", "dictionary"]
    assert wide.loc[("m", "gradient"), "dictionary"] == NOT_APPLICABLE
    assert wide.loc[("m", "categorical"), "noise"].startswith((f"{HOLDS}: ", f"{UNDECIDED}: "))
    assert "[" in wide.loc[("m", "categorical"), "noise"]  # with its interval
