"""Count tables and figures of the ground-truth chapter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from moralkit.data import load_records, stratified_subset
from moralkit.data.ground_truth import ground_truth_names
from moralkit.data.summaries import (
    PAPER_SOURCE,
    GroundTruthConfig,
    ground_truth_summary,
    paper_stratum_counts,
    prototype_counts,
    prototype_examples,
    prototype_table,
    stratum_counts,
    stratum_table,
    subset_composition,
    typicality_shares,
)
from moralkit.figures.ground_truth import (
    plot_stratum_counts,
    plot_subset_composition,
    plot_typicality_shares,
)


@pytest.fixture(scope="module")
def lexicon(offline_mirror):
    return {"moralstrength": load_records("moralstrength")}, paper_stratum_counts()


def test_ground_truth_names():
    assert ground_truth_names("moralstrength") == ["moralstrength"]
    assert ground_truth_names("moralstrength, socialchem-subset") == [
        "moralstrength",
        "socialchem-subset",
    ]
    assert ground_truth_names(["socialchem"]) == ["socialchem"]
    with pytest.raises(ValueError, match="valid names"):
        ground_truth_names("moralstrength,ethics")


def test_tables(lexicon):
    records, paper = lexicon
    counts = stratum_counts(records)
    assert len(counts) == 5 * (2 * 6 + 1)  # full grid, zeros included
    assert counts["records"].sum() == 2_845
    care_vice = counts[(counts["foundation"] == "care") & (counts["pole"] == "vice")]
    assert care_vice["records"].tolist() == [8, 22, 26, 114, 43, 39]  # 0.125 ... 1.0
    # fairness ratings never drop below 2.2 (|v| 0.7): no vice record above the 0.5 stratum
    fair_vice = counts[(counts["foundation"] == "fairness") & (counts["pole"] == "vice")]
    assert fair_vice["records"].tolist()[-2:] == [0, 0]

    wide = stratum_table(counts)
    assert wide.shape == (5, 13)
    care = wide.loc[("moralstrength", "care")]
    assert (care["virtue 0.125"], care["vice 1"], care["neutral"]) == (0, 39, 22)
    assert wide.to_numpy().sum() == 2_845

    assert paper["records"].sum() == 201_023 and len(paper) == 65
    shares = typicality_shares(pd.concat([counts, paper]))
    sums = shares.groupby(["source", "pole"])["share"].sum()
    assert np.allclose(sums.to_numpy(), 1.0)

    subset = stratified_subset(records["moralstrength"], scale=0.1)
    comp = subset_composition({"moralstrength": subset})
    assert comp["records"].sum() == len(subset)
    assert len(comp) == 5 * 5

    protos = prototype_examples(records, per_category=2)
    assert len(protos) == 10
    row = protos.set_index("category")
    # no cheating word above the 0.5 stratum: the lexicon rule pools down to it (42 words)
    assert row.loc["cheating", "prototypes"] == 42 and row["prototypes"].min() >= 20
    assert (
        row.loc["harm", "prototypes"] == 39 and len(row.loc["harm", "examples"].split(" | ")) == 2
    )

    figures = [
        plot_stratum_counts(pd.concat([counts, paper])),
        plot_typicality_shares(shares),
        plot_subset_composition(comp),
    ]
    assert all(isinstance(f, Figure) for f in figures)
    with pytest.raises(ValueError, match="lacks columns"):
        plot_subset_composition(counts)


def test_prototype_counts_for_every_ground_truth(offline_mirror):
    names = ["moralstrength", "emfd", "mfd2", "socialchem-subset"]
    counts = prototype_counts({name: load_records(name) for name in names})
    assert len(counts) == 10 * len(names)
    wide = prototype_table(counts)
    assert wide.shape == (4, 10)
    assert wide.loc[("moralstrength", "lexicon"), "cheating"] == 42
    assert wide.loc[("mfd2", "all"), "betrayal"] == 49
    lexicons = wide.drop(index=("socialchem-subset", "paper"))
    assert (lexicons.to_numpy() > 0).all()  # every lexicon: prototypes in all ten categories
    assert (wide.loc[("socialchem-subset", "paper"), ["harm", "cheating"]] == 0).all()  # no vice
    rows = counts.set_index(["source", "category"])
    assert rows.loc[("moralstrength", "authority"), "threshold"] == 0.75
    assert not rows.loc[("mfd2", "care"), "has_typicality"]


def test_chapter_01_summary_tables_and_claims(lexicon):
    records, _ = lexicon
    subsets = {"moralstrength": stratified_subset(records["moralstrength"], scale=0.5, seed=42)}
    summary = ground_truth_summary(records, subsets, GroundTruthConfig(sample_scale=0.5))
    assert list(summary.tables) == list(summary.TABLES)
    sources = set(summary["stratum_counts"]["source"])
    assert sources == {"moralstrength", *(PAPER_SOURCE.format(split=s) for s in ("train", "val"))}
    assert PAPER_SOURCE.format(split="val") not in set(summary.train_counts()["source"])
    claims = {c.claim_id: c for c in summary.claim()}
    counts = records["moralstrength"].provenance["counts"]
    assert claims["expanded_records"].value == counts["expanded_records"]
    assert claims["diagnostic_subset"].value == len(subsets["moralstrength"])
    assert (
        claims["diagnostic_subset"].note == "moralstrength: stratified subset at sample_scale 0.5"
    )
    assert all(c.extra == {"ground_truth": "moralstrength"} for c in claims.values())
