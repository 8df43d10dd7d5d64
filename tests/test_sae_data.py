"""SAE data: the unlabelled pool, and the cross-fitting folds every labelled record is scored
through (one fold's SAE never fine-tuned on a record it scores)."""

import numpy as np
import pandas as pd
import pytest
from shared_data import needs_mirror
from synthetic import make_records

from moralkit.data.unlabelled import (
    UNLABELLED_LEXICONS,
    UNLABELLED_SOURCES,
    unlabelled_files,
    unlabelled_pool,
    unlabelled_texts,
)
from moralkit.records import MoralRecords
from moralkit.sae.data import crossfit_folds, fold_records, holdout_split


def _with_duplicate_texts(records: MoralRecords) -> MoralRecords:
    """Every third record shares its text with the next one (a word of two foundations)."""
    table = records.table.copy()
    texts = table["text"].to_numpy(dtype=object)
    texts[1::3] = texts[0::3][: len(texts[1::3])]
    return MoralRecords(table.assign(text=texts), records.provenance)


def test_folds_are_stratified_and_keep_each_text_in_one_fold():
    records = make_records(n_per_stratum=6, n_prototypes=10, seed=0)
    folds = crossfit_folds(records, 5, seed=3)
    table = records.table.assign(fold=folds)
    assert set(folds) == set(range(5))
    protos = table[table["is_prototype"]].groupby(["category", "fold"]).size().unstack()
    assert (protos == 2).all().all()  # 10 prototypes per category: 2 in every fold
    shared = _with_duplicate_texts(records)
    by_text = shared.table.assign(fold=crossfit_folds(shared, 5, seed=3)).groupby("text")
    assert by_text["fold"].nunique().max() == 1  # no text in two folds
    assert np.array_equal(folds, crossfit_folds(records, 5, seed=3))  # seeded
    assert not np.array_equal(folds, crossfit_folds(records, 5, seed=4))
    with pytest.raises(ValueError, match="n_folds=1"):
        crossfit_folds(records, 1)


def test_fold_records_hold_out_the_fold_and_split_the_rest_by_text():
    records = _with_duplicate_texts(make_records(n_per_stratum=6, n_prototypes=10, seed=1))
    folds = crossfit_folds(records, 4, seed=0)
    for k in range(4):
        fold = fold_records(records, folds, k, val_fraction=0.125, seed=0)
        split = fold.table["split"].to_numpy()
        assert np.array_equal(split == "test", folds == k)
        assert set(split[folds != k]) == {"train", "val"}
        assert 0.08 < np.mean(split[folds != k] == "val") < 0.2
        by_text = fold.table.groupby("text")["split"].nunique()
        assert by_text.max() == 1  # a text is never both fine-tuned on and validated on
    with pytest.raises(ValueError, match="val_fraction"):
        fold_records(records, folds, 0, val_fraction=1.0)


def test_holdout_split_is_seeded_and_disjoint():
    tr, va = holdout_split(100, 0.05, seed=1)
    assert len(va) == 5 and len(tr) == 95 and not set(tr) & set(va)
    assert np.array_equal(va, holdout_split(100, 0.05, seed=1)[1])
    assert len(holdout_split(3, 0.01)[1]) == 1  # at least one each side
    with pytest.raises(ValueError, match="cannot be split"):
        holdout_split(1, 0.5)


@needs_mirror
def test_the_pool_leaves_out_every_scored_ground_truth(offline_mirror):
    from moralkit.data.ground_truth import load_records

    pool = unlabelled_pool(("moralstrength", "socialchem-subset"))
    assert len(pool) > 30_000 and pool["text"].is_unique
    assert set(pool["source"]) >= {*UNLABELLED_SOURCES, "emfd", "mfd2"}
    scored = set(load_records("moralstrength").texts) | set(load_records("socialchem-subset").texts)
    assert not scored & set(pool["text"])
    assert pool["text"].str.split().str.len().max() <= 40
    small = unlabelled_texts(500, seed=2, exclude_ground_truths=("moralstrength",))
    large = unlabelled_texts(2000, seed=2, exclude_ground_truths=("moralstrength",))
    assert len(small) == 500 and set(small["text"]) <= set(large["text"])  # samples nest
    assert set(small["source"]) <= set(UNLABELLED_LEXICONS)  # the words come first
    n_words = int(pool["source"].isin(UNLABELLED_LEXICONS).sum())
    assert large["source"].isin(UNLABELLED_LEXICONS).sum() == min(2000, n_words)
    assert unlabelled_texts(0).empty


def test_the_workflow_fetches_every_file_of_the_pool():
    from moralkit.data.ground_truth import GROUND_TRUTH_FILES
    from moralkit.workflow import data_files

    wanted = set(UNLABELLED_SOURCES) | {
        f for g in UNLABELLED_LEXICONS for f in GROUND_TRUTH_FILES[g]
    }
    assert set(unlabelled_files()) == wanted
    assert wanted <= set(data_files("quick", ["07_sae_surgery"]))


def test_folds_need_distinct_texts():
    records = make_records(n_per_stratum=1, n_prototypes=1, n_neutral=1, seed=0)
    same = MoralRecords(records.table.assign(text="one text"), records.provenance)
    with pytest.raises(ValueError, match="cannot fill"):
        crossfit_folds(same, 2)
    assert isinstance(records.table, pd.DataFrame)
