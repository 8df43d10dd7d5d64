"""The shared result shape (moralkit.results)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd
import pytest

from moralkit.results import AnalysisResult, ClaimValue, claim_list


@dataclass
class ToyResult(AnalysisResult):
    TABLES: ClassVar[tuple[str, ...]] = ("by_layer",)
    BEST_TABLE: ClassVar[str] = "by_layer"
    BEST_COLUMN: ClassVar[str] = "score"

    def claim(self) -> list[ClaimValue]:
        top = self.best()
        return [ClaimValue("toy", float(top["score"].max()), extra={"n": len(top)})]


def _toy(model: str, scores: list[float]) -> ToyResult:
    table = pd.DataFrame({"model": model, "layer": range(len(scores)), "score": scores})
    return ToyResult({"by_layer": table, "extra": table.head(1)}, config="cfg")


def test_concat_stacks_every_table_and_keeps_config():
    both = ToyResult.concat([_toy("a", [0.1, 0.5]), _toy("b", [0.3, 0.2, 0.9])])
    assert len(both["by_layer"]) == 5 and len(both["extra"]) == 2
    assert both.models == ["a", "b"]
    assert both.config == "cfg"


def test_best_is_one_row_per_model_at_the_maximum():
    best = ToyResult.concat([_toy("a", [0.1, 0.5]), _toy("b", [0.3, float("nan"), 0.9])]).best()
    assert best[["model", "layer"]].values.tolist() == [["a", 1], ["b", 2]]


def test_missing_table_is_refused():
    with pytest.raises(ValueError, match="by_layer"):
        ToyResult({"other": pd.DataFrame()})


def test_concat_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="at least one"):
        ToyResult.concat([])


def test_claim_list_normalises():
    value = ClaimValue("x", 1)
    assert claim_list(None) == [] and claim_list(value) == [value]
    assert claim_list((value, value)) == [value, value]
    assert _toy("a", [0.2, 0.7]).claim()[0].value == 0.7
