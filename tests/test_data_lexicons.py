"""The eMFD, MFD 2.0 and original-MFD ground truths and the prototype rule, on the real files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moralkit.data import GROUND_TRUTHS, diagnostic_records, load_records
from moralkit.data.dictionaries import dictionary_items, parse_dic, reference_vocabulary
from moralkit.data.emfd import EMFD_FLOOR, bin_probability
from moralkit.data.prototypes import MIN_PROTOTYPES, assign_prototypes, prototype_thresholds
from moralkit.foundations import DIMENSIONS

LEXICONS = ("moralstrength", "emfd", "mfd2", "mfd")


# ------------------------------------------------------------------ pure rules, by hand
def test_emfd_bins_by_hand():
    p = np.array([0.0, 0.1999, 0.2, 0.249, 0.25, 0.3, 0.34, 0.35, 0.4, 0.49, 0.5, 0.75, 1.0])
    assert EMFD_FLOOR == 0.2
    assert bin_probability(p).tolist() == [
        0.0, 0.0, 0.125, 0.125, 0.25, 0.375, 0.375, 0.5, 0.75, 0.75, 1.0, 1.0, 1.0,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        bin_probability(np.array([1.2]))


def polar_table(sizes: dict[tuple[str, float], int]) -> pd.DataFrame:
    rows = [
        {"category": c, "pole": "vice" if DIMENSIONS.index(c) % 2 else "virtue", "typicality": t}
        for (c, t), n in sizes.items()
        for _ in range(n)
    ]
    rows.append({"category": "neutral", "pole": "neutral", "typicality": 0.0})
    return pd.DataFrame(rows)


def test_lexicon_rule_pools_down_until_the_minimum():
    table = polar_table(
        {
            ("care", 1.0): 25,  # big enough alone
            ("care", 0.75): 40,
            ("harm", 1.0): 6,  # too thin: pool 0.75 (6 + 16 = 22 >= 20)
            ("harm", 0.75): 16,
            ("harm", 0.5): 90,
            ("cheating", 0.5): 19,  # top stratum exists only at 0.5, too thin: pool 0.375
            ("cheating", 0.375): 3,
            ("cheating", 0.125): 50,
            ("fairness", 0.25): 5,  # whole category below the minimum: all of it
        }
    )
    assert MIN_PROTOTYPES == 20
    assert prototype_thresholds(table) == {
        "care": 1.0,
        "harm": 0.75,
        "cheating": 0.375,
        "fairness": 0.25,
    }
    marked, summary = assign_prototypes(table, "lexicon")
    per = marked[marked["is_prototype"]].groupby("category").size().to_dict()
    assert per == {"care": 25, "harm": 22, "cheating": 22, "fairness": 5}
    assert summary["categories"]["harm"] == {"threshold": 0.75, "prototypes": 22}
    assert summary["categories"]["loyalty"]["prototypes"] == 0
    assert set(marked.loc[marked["is_prototype"], "stratum"]) == {"virtue_typical", "vice_typical"}
    assert not marked.loc[marked["pole"] == "neutral", "is_prototype"].any()

    paper, _ = assign_prototypes(table, "paper")
    assert paper[paper["is_prototype"]].groupby("category").size().to_dict() == {
        "care": 25,
        "harm": 6,
    }
    every, _ = assign_prototypes(table, "all")
    assert every["is_prototype"].sum() == len(table) - 1
    with pytest.raises(ValueError, match="valid rules"):
        assign_prototypes(table, "median")


def test_parse_dic_phrases_ids_and_wildcards():
    text = (
        "%\n1\tcare.virtue\n2\tcare.vice\n11\tmoral\n%\n"
        "golden rule\t1\nharm*\t\t2 11\nkind\t1\nkind\t2\nsafe\t1\nzzz*\t2\n"
    )
    dic = parse_dic(text, "test.dic")
    assert dic.categories == {1: "care.virtue", 2: "care.vice", 11: "moral"}
    assert dic.entries[:2] == [("golden rule", (1,)), ("harm*", (2, 11))]
    vocab = reference_vocabulary(["Harm", "harmed", "harmless", "charm", "safe", "two words"])
    assert vocab == ["charm", "harm", "harmed", "harmless", "safe"]
    built = dictionary_items(dic, "t", "test.dic", vocab)
    got = dict(zip(built.items["text"], built.items["m_vice"], strict=True))
    assert got == {"golden rule": 0.0, "harm": 1.0, "harmed": 1.0, "harmless": 1.0, "safe": 0.0}
    assert built.dropped == {"general_morality": 1, "unmatched_wildcards": 1, "contradictory": 2}
    with pytest.raises(ValueError, match="no vocabulary"):
        dictionary_items(dic, "t", "test.dic", None)
    with pytest.raises(ValueError, match="line 6"):
        parse_dic("%\n1\tcare.virtue\n%\nword\t7\n".replace("%\nword", "%\n\n\nword"), "x.dic")


# ------------------------------------------------------------------ the real files
@pytest.fixture(scope="module")
def lexicons(offline_mirror):
    return {name: load_records(name) for name in LEXICONS}


def test_every_lexicon_has_prototypes_in_all_ten_categories(lexicons, offline_mirror):
    assert set(LEXICONS) <= set(GROUND_TRUTHS)
    for name in LEXICONS:
        quick = diagnostic_records(name, sample_scale=1.0)  # the quick profile's subset
        per = quick.table[quick.table["is_prototype"]].groupby("category").size()
        assert set(per.index) == set(DIMENSIONS), name
        rule = lexicons[name].provenance["prototype_rule"]
        counts = [c["prototypes"] for c in rule["categories"].values()]
        if rule["rule"] == "lexicon":
            assert min(counts) >= MIN_PROTOTYPES, name


def test_moralstrength_cheating_prototypes_come_from_the_half_stratum(lexicons):
    t = lexicons["moralstrength"].table
    cheating = t[t["category"] == "cheating"]
    assert cheating["typicality"].max() == 0.5
    assert cheating["is_prototype"].sum() == (cheating["typicality"] == 0.5).sum() == 42
    authority = t[(t["category"] == "authority") & t["is_prototype"]]
    assert sorted(authority["typicality"].unique()) == [0.75, 1.0]  # 6 at 1.0 was too thin
    assert lexicons["moralstrength"].has_typicality


def test_emfd_records_by_hand(lexicons):
    records = lexicons["emfd"]
    assert records.has_typicality
    t = records.table.set_index("record_id")
    # brought: care_p 0.18 < floor everywhere (max 0.18): neutral, under care (its highest p)
    assert t.loc["emfd_brought:care", ["pole", "typicality"]].tolist() == ["neutral", 0.0]
    assert not any(r.startswith("emfd_brought:") for r in t.index if r != "emfd_brought:care")
    counts = records.provenance["counts"]
    assert counts["raw_rows"] == 3_270
    assert counts["by_pole"] == {"neutral": 2_083, "vice": 1_343, "virtue": 584}
    assert counts["dropped"] == {"entries_without_sentiment": 7}
    polar = records.table[records.table["pole"] != "neutral"]
    assert set(polar["typicality"]) == {0.125, 0.25, 0.375, 0.5, 0.75, 1.0}
    assert (records.table.groupby("source_id")["split"].nunique() == 1).all()


def test_emfd_matches_the_raw_file(lexicons, offline_mirror):
    raw = pd.read_csv(offline_mirror / "mfd" / "emfd_scoring.csv").set_index("word")
    t = lexicons["emfd"].table
    polar = t[t["pole"] != "neutral"].sample(200, random_state=0)
    for _, row in polar.iterrows():
        p = raw.loc[row["text"], f"{row['foundation']}_p"]
        sent = raw.loc[row["text"], f"{row['foundation']}_sent"]
        assert p >= EMFD_FLOOR
        assert (row["pole"] == "virtue") == (sent > 0)
        assert row["typicality"] == bin_probability(np.array([p]))[0]


def test_mfd2_records(lexicons):
    records = lexicons["mfd2"]
    assert not records.has_typicality
    t = records.table
    assert t["is_prototype"].all() and (t["typicality"] == 1.0).all()
    assert (t["pole"] != "neutral").all()
    assert records.provenance["counts"]["raw_rows"] == 2_103
    # six terms ("wound", "vulnerable", ...) are listed under care virtue and care vice
    assert records.provenance["counts"]["dropped"]["contradictory"] == 12
    assert len(t) == 2_103 - 12
    assert "golden rule" in set(t["text"])  # multi-word phrases kept
    per = t.groupby("category").size().to_dict()
    assert per["loyalty"] == 142 and per["betrayal"] == 49 and per["degradation"] == 388
    row = t.set_index("record_id").loc["mfd2_compassion:care"]
    assert (row["category"], row["care"], row["harm"]) == ("care", 1.0, 0.0)


def test_original_mfd_expands_wildcards(lexicons):
    records = lexicons["mfd"]
    assert not records.has_typicality
    t = records.table
    dropped = records.provenance["counts"]["dropped"]
    assert dropped["general_morality"] == 41  # the 'moral' category has no foundation
    harm = set(t.loc[t["category"] == "harm", "text"])
    assert {"harm", "harmed", "harmful", "harming"} <= harm  # from "harm*"
    assert not any(text.endswith("*") for text in t["text"])
    assert "preserve" in set(t.loc[t["foundation"] == "authority", "text"])  # 01 07 09
    assert t["is_prototype"].all()
