"""The shared types: foundations, record table, activation set, atomic writes."""

import numpy as np
import pandas as pd
import pytest

from moralkit.activation_set import ActivationSet
from moralkit.foundations import DIMENSIONS, FOUNDATIONS, dimension_index, dimension_of
from moralkit.io import atomic_path, atomic_write_text
from moralkit.records import RECORD_COLUMNS, MoralRecords


def test_dimension_order_is_the_papers():
    assert DIMENSIONS == (
        "care", "harm", "fairness", "cheating", "loyalty",
        "betrayal", "authority", "subversion", "sanctity", "degradation",
    )  # fmt: skip
    for k, f in enumerate(FOUNDATIONS):
        assert dimension_index(f, "virtue") == 2 * k
        assert dimension_index(f, "vice") == 2 * k + 1
    assert dimension_of("sanctity", "vice") == "degradation"
    with pytest.raises(ValueError, match="unknown foundation"):
        dimension_of("purity", "virtue")
    with pytest.raises(ValueError, match="pole"):
        dimension_of("care", "neutral")


def _row(**kw):
    row = {c: 0.0 for c in DIMENSIONS}
    row.update(
        record_id="r1:care", source_id="r1", source="test", text="helping", foundation="care",
        pole="virtue", category="care", typicality=1.0, is_prototype=True,
        stratum="virtue_typical", split="train",
    )  # fmt: skip
    row.update(kw)
    return row


def test_records_validate_columns_and_values():
    recs = MoralRecords(pd.DataFrame([_row(care=1.0), _row(record_id="r2:care", pole="neutral")]))
    assert len(recs) == 2
    assert list(recs.table.columns) == list(RECORD_COLUMNS)
    assert recs.vectors.shape == (2, 10) and recs.vectors[0, 0] == 1.0
    assert recs.where(recs.table["pole"] == "neutral").texts == ["helping"]
    with pytest.raises(ValueError, match="lacks columns"):
        MoralRecords(pd.DataFrame([_row()]).drop(columns=["typicality"]))
    with pytest.raises(ValueError, match="unknown foundations"):
        MoralRecords(pd.DataFrame([_row(foundation="purity")]))


def test_activation_set_get_take_and_errors():
    rng = np.random.default_rng(0)
    per_layer = {0: rng.normal(size=(4, 3)), 2: rng.normal(size=(4, 3))}
    acts = ActivationSet.from_arrays(per_layer, n_model_layers=3)
    assert acts.layers == (0, 2) and acts.n_texts == 4 and acts.width == 3
    np.testing.assert_allclose(acts.get(2), per_layer[2].astype(np.float32))
    assert acts.relative_depth(2) == 1.0
    taken = acts.take([3, 3, 0])
    np.testing.assert_allclose(taken.get(0)[1], per_layer[0][3].astype(np.float32))
    assert acts.select_layers([2]).layers == (2,)
    with pytest.raises(KeyError, match="layer 1 not stored"):
        acts.get(1)
    with pytest.raises(KeyError, match="pooling 'last' not stored"):
        acts.get(0, "last")
    with pytest.raises(ValueError, match="out of range"):
        ActivationSet.from_arrays({5: np.zeros((2, 2))}, n_model_layers=3)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    atomic_write_text("whole", target)
    assert target.read_text() == "whole"
