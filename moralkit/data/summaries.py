"""Tidy count tables describing a ground truth (the tables behind chapter 01).

Every table has a ``source`` column (a ground-truth name, or the paper's bucket files) so
several sources stack into one table and one figure. :func:`ground_truth_summary` is chapter
01's recipe: every table the chapter saves, and its claims (paper §1.1-1.5; book: Methods ›
Data, methods/data.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from moralkit.data.ground_truth import compare_with_paper, paper_bucket_counts
from moralkit.data.manifest import Manifest
from moralkit.foundations import DIMENSIONS, FOUNDATIONS, TYPICALITY_STRATA
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult, ClaimValue

PAPER_SOURCE = "paper (MoralMi {split} buckets)"
STRATA_ORDER: tuple[str, ...] = ("virtue_typical", "virtue", "neutral", "vice", "vice_typical")


def _strata_grid() -> pd.DataFrame:
    """Every foundation x pole x typicality cell (neutral only at typicality 0)."""
    cells = [(f, p, t) for f in FOUNDATIONS for p in ("virtue", "vice") for t in TYPICALITY_STRATA]
    cells += [(f, "neutral", 0.0) for f in FOUNDATIONS]
    return pd.DataFrame(cells, columns=["foundation", "pole", "typicality"])


def stratum_counts(records: Mapping[str, MoralRecords]) -> pd.DataFrame:
    """Records per source x foundation x pole x typicality, empty cells included as 0.

    paper §1.3-1.4. Columns: ``source, foundation, pole, typicality, records``.
    """
    parts = []
    for source, recs in records.items():
        counted = recs.counts()
        cells = _strata_grid().merge(counted, how="left", on=["foundation", "pole", "typicality"])
        cells["records"] = cells["records"].fillna(0).astype(int)
        parts.append(cells.assign(source=source))
    return _tidy(pd.concat(parts, ignore_index=True))


def paper_stratum_counts(split: str = "train", manifest: Manifest | None = None) -> pd.DataFrame:
    """The paper's per-stratum counts (MoralMi buckets, §1.4) in :func:`stratum_counts` form."""
    buckets = paper_bucket_counts(manifest)
    if split not in set(buckets["split"]):
        raise ValueError(f"split must be one of {sorted(set(buckets['split']))}, got {split!r}")
    rows = buckets[buckets["split"] == split].drop(columns="split")
    cells = _strata_grid().merge(rows, how="left", on=["foundation", "pole", "typicality"])
    cells["records"] = cells["records"].fillna(0).astype(int)
    return _tidy(cells.assign(source=PAPER_SOURCE.format(split=split)))


def _tidy(table: pd.DataFrame) -> pd.DataFrame:
    table["foundation"] = pd.Categorical(table["foundation"], FOUNDATIONS, ordered=True)
    table["pole"] = pd.Categorical(table["pole"], ["virtue", "vice", "neutral"], ordered=True)
    table = table.sort_values(["source", "foundation", "pole", "typicality"], kind="stable")
    table["foundation"] = table["foundation"].astype(str)
    table["pole"] = table["pole"].astype(str)
    return table[["source", "foundation", "pole", "typicality", "records"]].reset_index(drop=True)


def stratum_table(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`stratum_counts` as a wide table: one row per source x foundation.

    Columns ``virtue 0.125`` ... ``virtue 1``, ``vice 0.125`` ... ``vice 1`` (the top stratum:
    the paper's prototypes; lexicons may pool lower strata, see :func:`prototype_counts`) and
    ``neutral``.
    """
    labels = counts["pole"] + np.where(
        counts["pole"] == "neutral", "", " " + counts["typicality"].map("{:g}".format)
    )
    order = [f"{p} {t:g}" for p in ("virtue", "vice") for t in TYPICALITY_STRATA] + ["neutral"]
    wide = counts.assign(column=labels).pivot_table(
        index=["source", "foundation"], columns="column", values="records", sort=False
    )
    wide = wide.reindex(columns=order, fill_value=0).fillna(0).astype(int)
    wide.columns.name = None
    return wide


def typicality_shares(counts: pd.DataFrame) -> pd.DataFrame:
    """Share of each typicality stratum within its source x pole (polar records only).

    Makes sources of very different sizes comparable (ours vs the paper's 201k train records).
    Columns: ``source, pole, typicality, records, share``.
    """
    polar = counts[counts["pole"] != "neutral"]
    table = polar.groupby(["source", "pole", "typicality"], as_index=False)["records"].sum()
    totals = table.groupby(["source", "pole"])["records"].transform("sum")
    table["share"] = np.where(totals > 0, table["records"] / totals.where(totals > 0, 1), 0.0)
    return table


def subset_composition(subsets: Mapping[str, MoralRecords]) -> pd.DataFrame:
    """Stratified-subset records per source x foundation x stratum (paper §1.5).

    Columns: ``source, foundation, stratum, records`` (strata in :data:`STRATA_ORDER`).
    """
    rows = []
    for source, subset in subsets.items():
        sizes = subset.table.groupby(["foundation", "stratum"]).size()
        for f in FOUNDATIONS:
            for stratum in STRATA_ORDER:
                rows.append((source, f, stratum, int(sizes.get((f, stratum), 0))))
    return pd.DataFrame(rows, columns=["source", "foundation", "stratum", "records"])


def prototype_examples(
    records: Mapping[str, MoralRecords], per_category: int = 3, seed: int = 42
) -> pd.DataFrame:
    """Up to ``per_category`` random prototype texts for each of the ten categories.

    Columns: ``source, category, prototypes`` (how many exist) and ``examples`` (texts joined
    with " | "; empty where a source has no prototype in that category).
    """
    rows = []
    rng = np.random.default_rng(seed)
    for source, recs in records.items():
        protos = recs.table[recs.table["is_prototype"]].drop_duplicates(["category", "text"])
        for category in DIMENSIONS:
            texts = protos.loc[protos["category"] == category, "text"].to_numpy(dtype=object)
            picked = rng.choice(texts, size=min(per_category, len(texts)), replace=False)
            rows.append((source, category, len(texts), " | ".join(sorted(picked))))
    return pd.DataFrame(rows, columns=["source", "category", "prototypes", "examples"])


def prototype_counts(records: Mapping[str, MoralRecords]) -> pd.DataFrame:
    """Prototypes per source x category, and the lowest typicality that counts as one.

    The prototype rule of each ground truth (:mod:`moralkit.data.prototypes`) decides; an
    empty category (0) has no centre in the diagnostics. Columns: ``source, rule, category,
    prototypes, threshold`` (NaN where the rule set none) and ``has_typicality``.
    """
    rows = []
    for source, recs in records.items():
        rule = recs.provenance.get("prototype_rule", {})
        table = recs.table[recs.table["is_prototype"]]
        sizes = table.groupby("category").size()
        for category in DIMENSIONS:
            threshold = rule.get("categories", {}).get(category, {}).get("threshold")
            rows.append(
                (
                    source,
                    rule.get("rule", "paper"),
                    category,
                    int(sizes.get(category, 0)),
                    np.nan if threshold is None else float(threshold),
                    recs.has_typicality,
                )
            )
    columns = ["source", "rule", "category", "prototypes", "threshold", "has_typicality"]
    return pd.DataFrame(rows, columns=columns)


def prototype_table(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`prototype_counts` as a wide table: one row per source, one column per category."""
    wide = counts.pivot_table(
        index=["source", "rule"], columns="category", values="prototypes", sort=False
    )
    wide = wide.reindex(columns=list(DIMENSIONS)).fillna(0).astype(int)
    wide.columns.name = None
    return wide


@dataclass(frozen=True)
class GroundTruthConfig:
    """Chapter 01's settings: the diagnostic subset's scale (paper §1.5, for the claim's note)
    and the draw of ``per_category`` prototype examples with ``seed``."""

    sample_scale: float = 1.0
    seed: int = 42
    per_category: int = 3


@dataclass
class GroundTruthSummary(AnalysisResult):
    """Chapter 01's tables: our counts beside the paper's (``counts_vs_paper``), records per
    typicality stratum with the paper's train and validation buckets (``stratum_counts``),
    prototypes per category (``prototype_counts``) and examples (``prototype_examples``).

    :meth:`claim` measures ``expanded_records`` and ``diagnostic_subset`` on the first ground
    truth (the primary one).
    """

    TABLES = ("counts_vs_paper", "stratum_counts", "prototype_counts", "prototype_examples")

    def train_counts(self) -> pd.DataFrame:
        """``stratum_counts`` without the paper's validation buckets (the figures' data)."""
        counts = self.tables["stratum_counts"]
        keep = counts["source"] != PAPER_SOURCE.format(split="val")
        return counts[keep].reset_index(drop=True)

    def best(self) -> pd.DataFrame:
        """The headline rows: each ground truth's counts beside the paper's (no model here)."""
        return self.tables["counts_vs_paper"]

    def claim(self) -> list[ClaimValue]:
        comparison = self.tables["counts_vs_paper"]
        primary = str(comparison["ground_truth"].iloc[0])
        measured = comparison[comparison["ground_truth"] == primary].set_index("quantity")
        measured = measured["measured"]
        scale = self.config.sample_scale if self.config else None
        extra = {"ground_truth": primary}
        return [
            ClaimValue(
                "expanded_records",
                int(measured["expanded records (row x foundation)"]),
                f"{primary}: {int(measured['unique cleaned rows'])} cleaned rows exploded per "
                "foundation",
                extra,
            ),
            ClaimValue(
                "diagnostic_subset",
                int(measured["diagnostic subset"]),
                f"{primary}: stratified subset at sample_scale {scale}",
                extra,
            ),
        ]


def ground_truth_summary(
    records: Mapping[str, MoralRecords],
    subsets: Mapping[str, MoralRecords],
    config: GroundTruthConfig = GroundTruthConfig(),
    manifest: Manifest | None = None,
) -> GroundTruthSummary:
    """Chapter 01's recipe: ``records`` (all expanded records of each ground truth, with
    splits) and ``subsets`` (their stratified diagnostic subsets) into the chapter's tables; the
    first ground truth is the primary one (its claims)."""
    comparison = [compare_with_paper(subsets[name], manifest) for name in subsets]
    paper = [paper_stratum_counts(split, manifest) for split in ("train", "val")]
    tables = {
        "counts_vs_paper": pd.concat(comparison, ignore_index=True),
        "stratum_counts": pd.concat([stratum_counts(records), *paper], ignore_index=True),
        "prototype_counts": prototype_counts(records),
        "prototype_examples": prototype_examples(records, config.per_category, config.seed),
    }
    return GroundTruthSummary(tables, config)
