"""Does indifference replicate? The four diagnostics on every ground truth, and lexicon agreement.

The paper measures indifference against one ground truth. Here each model's cached activations
are diagnosed against several independent ones (MoralStrength, the eMFD, MFD 2.0, the original
MFD; book: Methods › Ground truths, methods/ground-truths.md), and each diagnostic's
indifference claim of ``claims.yaml`` is judged per model x ground truth with the same check
the single-ground-truth chapters use. Where verdicts differ across ground truths, the lexicons'
own agreement (:func:`lexicon_agreement`: rank correlation of their ratings on shared words)
tells annotation disagreement from model behaviour.

- :func:`replication` -> :class:`ReplicationResult` with tables ``verdicts`` (one row per model x
  ground truth x diagnostic: headline value, interval, layer, verdict), ``agreement`` (one row
  per model x diagnostic: on how many ground truths the claim holds, and whether they agree)
  and, when asked, ``lexicon_agreement``;
- :meth:`ReplicationResult.claim` gives ``replication_<diagnostic>`` for the claims page.

A diagnostic that needs graded typicality (gradient) does not apply to a ground truth without
it (``records.has_typicality`` is False: MFD 2.0, the original MFD) and is reported so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.claims import AGREES, DISAGREES, INCONCLUSIVE, judge_claim, load_claims
from moralkit.diagnostics import DIAGNOSTICS, diagnose, diagnostic_configs
from moralkit.diagnostics.no_effect import INDIFFERENCE_METRICS
from moralkit.foundations import FOUNDATIONS
from moralkit.provenance import to_jsonable
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, ClaimValue

#: The indifference claim each diagnostic measures (claims.yaml).
INDIFFERENCE_CLAIMS: dict[str, str] = {d: f"{d}_indifference" for d in DIAGNOSTICS}
#: The replication summary claim of each diagnostic (claims.yaml).
REPLICATION_CLAIMS: dict[str, str] = {d: f"replication_{d}" for d in DIAGNOSTICS}
#: The headline metric (prefix) whose value and interval stand beside each verdict.
HEADLINE_METRICS: dict[str, str] = INDIFFERENCE_METRICS
#: Diagnostics that need graded typicality.
NEEDS_TYPICALITY: tuple[str, ...] = ("gradient",)
HOLDS, FAILS, NOT_APPLICABLE, UNJUDGED = "holds", "fails", "does not apply", "not checkable"
#: a cell whose interval straddles the margin, or whose gate, MDE or control holds it back
UNDECIDED = INCONCLUSIVE
#: the claims.py verdict -> the word the replication tables use
_WORD = {AGREES: HOLDS, DISAGREES: FAILS, INCONCLUSIVE: UNDECIDED}
#: a verdict row: which cell and claim, the headline row it judges, the verdict and its reason
VERDICT_COLUMNS: tuple[str, ...] = (
    "model",
    "ground_truth",
    "diagnostic",
    "claim_id",
    *HEADLINE_COLUMNS[HEADLINE_COLUMNS.index("metric") :],
    "verdict",
    "reason",
    "n_records",
    "measurement",
)
#: Spearman's variance inflation for the Fisher-z interval (Fieller, Hartley & Pearson 1957).
SPEARMAN_SE_FACTOR = 1.06


@dataclass(frozen=True)
class ReplicationConfig:
    """Which diagnostics to run and their settings.

    ``configs`` maps a diagnostic name to its ``XConfig`` (or a mapping of its fields), exactly
    as :func:`moralkit.diagnostics.diagnose` takes them; ``min_shared_words`` is the fewest
    shared (word, foundation) pairs for which two lexicons' agreement is computed.
    """

    diagnostics: tuple[str, ...] = DIAGNOSTICS
    configs: Mapping[str, Any] = field(default_factory=dict)
    min_shared_words: int = 10

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> ReplicationConfig:
        """Chapter 11's settings: every diagnostic's ``XConfig`` from the chapter's parameters
        (``structural_permutations`` is the structural diagnostic's ``n_permutations``)."""
        names = {"structural": {"n_permutations": "structural_permutations"}}
        return cls(configs=diagnostic_configs(params, DIAGNOSTICS, names))

    def __post_init__(self) -> None:
        unknown = [d for d in self.diagnostics if d not in DIAGNOSTICS]
        if unknown:
            raise ValueError(f"diagnostics: unknown {unknown}; expected some of {DIAGNOSTICS}")
        if self.min_shared_words < 4:
            raise ValueError(f"min_shared_words={self.min_shared_words}: need at least 4")


@dataclass
class ReplicationResult(AnalysisResult):
    """Verdicts per model x ground truth x diagnostic and their agreement (see module doc).

    ``best()`` is, per model and diagnostic, the ground truth with the highest headline value
    (the strongest evidence against indifference)."""

    TABLES = ("verdicts", "agreement")
    BEST_TABLE = "verdicts"
    BEST_COLUMN = "value"
    BEST_GROUP = ("model", "diagnostic")

    def claim(self) -> list[ClaimValue]:
        """``replication_<diagnostic>``: on how many ground truths the claim holds for every
        model; ``extra`` lists them (``holds_on``, ``fails_on``, ``inconclusive_on``,
        ``mixed_on``, ``not_applicable_on``), ``n_ground_truths`` (where it applies),
        ``per_model`` and ``cells`` (each model x ground truth's own measurement, judged by
        claims.yaml with the indifference claim's check)."""
        verdicts = self.tables["verdicts"]
        out = []
        for diagnostic in dict.fromkeys(verdicts["diagnostic"]):
            rows = verdicts[verdicts["diagnostic"] == diagnostic]
            out.append(_replication_claim(diagnostic, rows))
        return out


def _replication_claim(diagnostic: str, rows: pd.DataFrame) -> ClaimValue:
    by_gt = rows.groupby("ground_truth", sort=False)["verdict"].agg(lambda v: sorted(set(v)))
    holds = [g for g, v in by_gt.items() if v == [HOLDS]]
    fails = [g for g, v in by_gt.items() if v == [FAILS]]
    undecided = [g for g, v in by_gt.items() if v == [UNDECIDED]]
    not_applicable = [g for g, v in by_gt.items() if v == [NOT_APPLICABLE]]
    mixed = [g for g in by_gt.index if g not in holds + fails + undecided + not_applicable]
    applicable = len(by_gt) - len(not_applicable)
    per_model = {
        str(m): dict(zip(t["ground_truth"], t["verdict"], strict=True))
        for m, t in rows.groupby("model", sort=False)
    }
    note = f"holds for every model on {len(holds)} of {applicable} ground truths"
    if holds:
        note += f" ({', '.join(holds)})"
    if fails:
        note += f"; fails on {', '.join(fails)}"
    if undecided:
        note += f"; inconclusive on {', '.join(undecided)}"
    if mixed:
        note += f"; models differ on {', '.join(mixed)}"
    if not_applicable:
        note += f"; does not apply to {', '.join(not_applicable)} (no typicality)"
    extra = {
        "n_ground_truths": applicable,
        "holds_on": holds,
        "fails_on": fails,
        "inconclusive_on": undecided,
        "mixed_on": mixed,
        "not_applicable_on": not_applicable,
        "per_model": per_model,
        "ground_truth": list(by_gt.index),
        "cells": _cells(rows),
    }
    return ClaimValue(REPLICATION_CLAIMS[diagnostic], len(holds), note, extra)


def _cells(rows: pd.DataFrame) -> dict[str, dict]:
    """``{"model · ground truth": measurement}`` of the cells where the diagnostic applies."""
    cells = {}
    for r in rows.itertuples():
        if r.verdict != NOT_APPLICABLE and isinstance(r.measurement, str) and r.measurement:
            cells[f"{r.model} · {r.ground_truth}"] = json.loads(r.measurement)
    return cells


def _headline_row(result: AnalysisResult, diagnostic: str) -> pd.Series | None:
    head = result.headline()
    metric = head["metric"].astype(str)
    head = head[metric.str.startswith(HEADLINE_METRICS[diagnostic])]
    head = head[~head["metric"].astype(str).str.endswith("_untrained")].dropna(subset=["value"])
    return None if head.empty else head.loc[head["value"].idxmax()]


def judge_result(result: AnalysisResult, diagnostic: str) -> tuple[str, str, Any, dict]:
    """``(verdict, reason, claimed value, measurement)`` of a diagnostic's indifference claim.

    The check is the claim's own in ``claims.yaml`` (:func:`moralkit.claims.judge_claim`):
    "holds" where the measurement agrees with the paper's claim of indifference, "fails" where
    it disagrees, "inconclusive" (with the reason) where neither is shown.
    """
    claim_id = INDIFFERENCE_CLAIMS[diagnostic]
    values = {c.claim_id: c for c in result.claim()}
    if claim_id not in values:
        return UNJUDGED, "the diagnostic recorded no value for its claim", np.nan, {}
    measured = values[claim_id]
    measurement = {"value": measured.value, **measured.fields()}
    measurement.pop("per_model", None)  # the cell is one model already
    verdict = judge_claim(load_claims()[claim_id], measurement)
    outcome = _WORD.get(verdict.verdict, UNJUDGED)
    return outcome, verdict.reason, measured.value, measurement


def verdict_rows(
    results: Mapping[str, AnalysisResult], records: MoralRecords, model: str, ground_truth: str
) -> list[dict]:
    """One verdict row (:data:`VERDICT_COLUMNS`) per diagnostic of one model x ground truth."""
    rows = []
    for diagnostic, result in results.items():
        verdict, reason, value, measurement = judge_result(result, diagnostic)
        head = _headline_row(result, diagnostic)
        row = {c: np.nan for c in VERDICT_COLUMNS}
        if head is not None:
            row.update({k: head[k] for k in ("metric", "value", "ci_low", "ci_high", "layer")})
            row["relative_depth"] = head["relative_depth"]
        if value is not None and not (isinstance(value, float) and np.isnan(value)):
            row["value"] = value
        row.update(verdict=verdict, reason=reason, diagnostic=diagnostic)
        row["measurement"] = json.dumps(to_jsonable(measurement)) if measurement else ""
        rows.append(row)
    for row in rows:
        row.update(model=model, ground_truth=ground_truth, n_records=len(records))
        row["claim_id"] = INDIFFERENCE_CLAIMS[row["diagnostic"]]
    return rows


def _not_applicable_row(diagnostic: str, model: str, ground_truth: str, n: int) -> dict:
    row = {c: np.nan for c in VERDICT_COLUMNS}
    row.update(
        model=model,
        ground_truth=ground_truth,
        diagnostic=diagnostic,
        claim_id=INDIFFERENCE_CLAIMS[diagnostic],
        metric=HEADLINE_METRICS[diagnostic],
        verdict=NOT_APPLICABLE,
        reason="the ground truth has no graded typicality",
        n_records=n,
        measurement="",
    )
    return row


def diagnose_ground_truth(
    acts: ActivationSet,
    records: MoralRecords,
    ground_truth: str,
    config: ReplicationConfig = ReplicationConfig(),
    progress: bool = False,
) -> pd.DataFrame:
    """Verdict rows of one model on one ground truth (diagnostics that apply are run)."""
    skip = [] if records.has_typicality else [d for d in NEEDS_TYPICALITY]
    which = [d for d in config.diagnostics if d not in skip]
    configs = {k: v for k, v in config.configs.items() if k in which}
    results = diagnose(acts, records, which=which, configs=configs, progress=progress)
    rows = verdict_rows(results, records, acts.model_id, ground_truth)
    rows += [
        _not_applicable_row(d, acts.model_id, ground_truth, len(records))
        for d in config.diagnostics
        if d in skip
    ]
    order = {d: i for i, d in enumerate(config.diagnostics)}
    rows.sort(key=lambda r: order[r["diagnostic"]])
    return pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))


def agreement_table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Per model x diagnostic: ground truths where the claim holds / fails / is inconclusive,
    and agreement.

    ``agree`` is True when every ground truth the diagnostic applies to gives the same decided
    verdict (holds or fails; an inconclusive ground truth decides nothing).
    """
    rows = []
    for (model, diagnostic), t in verdicts.groupby(["model", "diagnostic"], sort=False):
        judged = t[t["verdict"].isin([HOLDS, FAILS])]
        undecided = t[t["verdict"] == UNDECIDED]
        rows.append(
            {
                "model": model,
                "diagnostic": diagnostic,
                "n_ground_truths": len(judged),
                "holds": int((judged["verdict"] == HOLDS).sum()),
                "fails": int((judged["verdict"] == FAILS).sum()),
                "agree": judged["verdict"].nunique() <= 1,
                "holds_on": ", ".join(judged.loc[judged["verdict"] == HOLDS, "ground_truth"]),
                "fails_on": ", ".join(judged.loc[judged["verdict"] == FAILS, "ground_truth"]),
                "inconclusive_on": ", ".join(undecided["ground_truth"]),
                "not_applicable_on": ", ".join(
                    t.loc[t["verdict"] == NOT_APPLICABLE, "ground_truth"]
                ),
            }
        )
    return pd.DataFrame(rows)


def replication(
    models: Sequence[str],
    records: Mapping[str, MoralRecords],
    activations: Callable[[str, MoralRecords], ActivationSet],
    config: ReplicationConfig = ReplicationConfig(),
    progress: bool = True,
) -> ReplicationResult:
    """Run the diagnostics for every model x ground truth; judge each indifference claim.

    ``records`` maps ground-truth names to their diagnostic records; ``activations(model,
    records)`` returns the model's (cached) activations on them, e.g. ``Chapter.activations``.
    One activation set is held at a time.
    """
    if not models or not records:
        raise ValueError("replication needs at least one model and one ground truth")
    frames = []
    runs = [(m, g) for m in models for g in records]
    for model, gt in tqdm(runs, desc="replication", disable=not progress):
        acts = activations(model, records[gt])
        frames.append(diagnose_ground_truth(acts, records[gt], gt, config))
        del acts
    verdicts = pd.concat(frames, ignore_index=True)
    return ReplicationResult({"verdicts": verdicts, "agreement": agreement_table(verdicts)}, config)


# ---------------------------------------------------------------- the lexicons' own agreement
def signed_ratings(records: MoralRecords) -> pd.DataFrame:
    """One rating per (lower-cased word, foundation): +typicality for virtue, - for vice, 0
    for neutral. Columns ``word, foundation, rating``; a word rated twice keeps its mean."""
    t = records.table
    sign = np.select([t["pole"] == "virtue", t["pole"] == "vice"], [1.0, -1.0], 0.0)
    table = pd.DataFrame(
        {
            "word": t["text"].astype(str).str.strip().str.lower(),
            "foundation": t["foundation"].astype(str),
            "rating": sign * t["typicality"].to_numpy(dtype=float),
        }
    )
    return table.groupby(["word", "foundation"], as_index=False)["rating"].mean()


def spearman_interval(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval for Spearman's rho with the 1.06 variance factor (NaN for n < 4)."""
    if n < 4 or not np.isfinite(rho):
        return np.nan, np.nan
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(SPEARMAN_SE_FACTOR / (n - 3))
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def _pair_rows(a: str, b: str, merged: pd.DataFrame, min_shared: int) -> list[dict]:
    rows = []
    for foundation in ("all", *FOUNDATIONS):
        part = merged if foundation == "all" else merged[merged["foundation"] == foundation]
        n = len(part)
        rho = np.nan
        if n >= min_shared and part["rating_a"].nunique() > 1 and part["rating_b"].nunique() > 1:
            rho = float(stats.spearmanr(part["rating_a"], part["rating_b"]).statistic)
        low, high = spearman_interval(rho, n)
        polar = part[(part["rating_a"] != 0) & (part["rating_b"] != 0)]
        same = np.sign(polar["rating_a"]) == np.sign(polar["rating_b"])
        rows.append(
            {
                "lexicon_a": a,
                "lexicon_b": b,
                "foundation": foundation,
                "n_shared": n,
                "spearman": rho,
                "ci_low": low,
                "ci_high": high,
                "same_pole": float(same.mean()) if len(polar) else np.nan,
                "n_polar_both": len(polar),
            }
        )
    return rows


def lexicon_agreement(
    records: Mapping[str, MoralRecords], min_shared_words: int = 10
) -> pd.DataFrame:
    """Rank agreement of every pair of lexicons on the (word, foundation) pairs both rate.

    Ratings are :func:`signed_ratings` (dictionaries without typicality rate ±1). Per pair and
    per foundation (plus ``"all"`` pooled): ``n_shared``, Spearman's rho with a Fisher-z 95%
    interval (NaN below ``min_shared_words`` or without variation), and ``same_pole``, the share
    of shared polar pairs both put on the same pole.
    """
    names = list(records)
    ratings = {name: signed_ratings(records[name]) for name in names}
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            merged = ratings[a].merge(ratings[b], on=["word", "foundation"], suffixes=("_a", "_b"))
            rows += _pair_rows(a, b, merged, min_shared_words)
    columns = ["lexicon_a", "lexicon_b", "foundation", "n_shared", "spearman", "ci_low"]
    columns += ["ci_high", "same_pole", "n_polar_both"]
    return pd.DataFrame(rows, columns=columns)


def lexicons_among(ground_truths: Sequence[str]) -> list[str]:
    """The word lexicons among ``ground_truths`` (Social-Chem's sentences are not one)."""
    from moralkit.data.sources import REGISTRY

    return [g for g in ground_truths if g in REGISTRY and REGISTRY[g].prototype_rule != "paper"]


def agreement_of_lexicons(
    ground_truths: Sequence[str], min_shared_words: int = ReplicationConfig.min_shared_words
) -> pd.DataFrame:
    """:func:`lexicon_agreement` of the lexicons among ``ground_truths``, on their full records
    (every word each rates, not only the diagnostic subset), for the most shared words."""
    from moralkit.data import load_records

    names = lexicons_among(ground_truths)
    return lexicon_agreement({g: load_records(g) for g in names}, min_shared_words)


def _cell(row: pd.Series) -> str:
    if row["verdict"] == NOT_APPLICABLE or not np.isfinite(row["value"]):
        return row["verdict"]
    text = f"{row['verdict']}: {row['value']:.3f}"
    if np.isfinite(row["ci_low"]) and np.isfinite(row["ci_high"]):
        text += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
    return text


def verdict_matrix(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdicts for reading: rows model x diagnostic, one column per ground truth, each
    cell "holds: value [interval]" (or "does not apply")."""
    table = verdicts.assign(
        value=verdicts["value"].astype(float),
        ci_low=verdicts["ci_low"].astype(float),
        ci_high=verdicts["ci_high"].astype(float),
    )
    table["cell"] = table.apply(_cell, axis=1)
    wide = table.pivot(index=["model", "diagnostic"], columns="ground_truth", values="cell")
    wide = wide.reindex(columns=list(dict.fromkeys(verdicts["ground_truth"])))
    order = list(dict.fromkeys(zip(verdicts["model"], verdicts["diagnostic"], strict=True)))
    wide = wide.reindex(pd.MultiIndex.from_tuples(order, names=["model", "diagnostic"]))
    wide.columns.name = None
    return wide
