"""MoralStrength mapped into the record schema (both poles; offline ground truth)."""

from __future__ import annotations

import numpy as np
import pytest

from moralkit.data import load_records
from moralkit.data.moral_strength import bin_typicality
from moralkit.foundations import DIMENSIONS


def test_typicality_bins_by_hand():
    ratings = np.array([1.0, 1.5, 1.6, 2.0, 2.6, 3.0, 3.4, 4.5, 4.6, 5.0, 5.4, 5.5, 6.0, 6.4])
    ratings = np.append(ratings, [6.5, 7.0, 7.9, 8.0, 8.4, 8.5, 9.0])
    v = np.abs((ratings - 5) / 4)
    expected = [
        1.0,  # 1.0 -> |v| 1.0
        1.0,  # 1.5 -> 0.875: prototype edge
        0.75,  # 1.6 -> 0.85
        0.75,  # 2.0 -> 0.75
        0.5,  # 2.6 -> 0.6
        0.5,  # 3.0 -> 0.5
        0.375,  # 3.4 -> 0.4
        0.125,  # 4.5 -> 0.125: polar edge
        0.0,  # 4.6 -> 0.1: neutral
        0.0,  # 5.0
        0.0,  # 5.4
        0.125,  # 5.5
        0.25,  # 6.0 -> 0.25
        0.25,  # 6.4 -> 0.35
        0.375,  # 6.5 -> 0.375
        0.5,  # 7.0 -> 0.5
        0.5,  # 7.9 -> 0.725
        0.75,  # 8.0 -> 0.75
        0.75,  # 8.4 -> 0.85
        1.0,  # 8.5 -> 0.875
        1.0,  # 9.0
    ]
    assert bin_typicality(v).tolist() == expected
    with pytest.raises(ValueError):
        bin_typicality(np.array([1.2]))


@pytest.fixture(scope="module")
def lexicon(offline_mirror):
    return load_records("moralstrength")


def test_counts(lexicon):
    t = lexicon.table
    assert len(t) == 454 + 429 + 501 + 729 + 732
    assert t.groupby("foundation").size().to_dict() == {
        "authority": 729,
        "care": 454,
        "fairness": 429,
        "loyalty": 501,
        "sanctity": 732,
    }
    # ratings strictly between 4.5 and 5.5 are neutral
    assert lexicon.provenance["counts"]["by_pole"] == {"neutral": 302, "vice": 1360, "virtue": 1183}
    assert set(t.loc[t["pole"] != "neutral", "typicality"]) == {0.125, 0.25, 0.375, 0.5, 0.75, 1.0}
    assert lexicon.provenance["ground_truth"] == "moralstrength"
    assert set(lexicon.provenance["files"]) == {
        f"moralstrength-{f}" for f in ("care", "fairness", "loyalty", "authority", "purity")
    }


def test_words_by_hand(lexicon):
    t = lexicon.table.set_index("record_id")

    def check(rid, pole, category, typicality):
        row = t.loc[rid]
        assert (row["pole"], row["category"], row["typicality"]) == (pole, category, typicality)
        nonzero = {d: row[d] for d in DIMENSIONS if row[d] != 0}
        assert nonzero == ({} if pole == "neutral" else {category: typicality})

    check("moralstrength_abandon:care", "vice", "harm", 0.75)  # 1.6 -> v -0.85
    check("moralstrength_assassin:care", "vice", "harm", 1.0)  # 1.0 -> prototype
    check("moralstrength_Catholics:sanctity", "virtue", "sanctity", 0.25)  # purity 6.0
    check("moralstrength_-stained:sanctity", "neutral", "neutral", 0.0)  # 5.17
    check("moralstrength_arduous:authority", "vice", "subversion", 0.125)  # 4.5: edge
    assert t.loc["moralstrength_assassin:care", "is_prototype"]
    assert t.loc["moralstrength_assassin:care", "stratum"] == "vice_typical"


def test_split_by_word(lexicon):
    t = lexicon.table
    assert (t.groupby("source_id")["split"].nunique() == 1).all()  # a word is in one split
    words = t["source_id"].nunique()
    per_split = t.drop_duplicates("source_id")["split"].value_counts().to_dict()
    assert per_split["train"] == int(0.8 * words) and per_split["val"] == int(0.1 * words)
