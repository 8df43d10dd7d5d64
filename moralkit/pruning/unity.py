"""Unity of the harmful-generation set, judged between chance and a ceiling, over prompt resamples.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) Orgad et al. report
that the pruned set is shared across harm types and distinct from benign abilities. Three
overlaps (Jaccard, after the set difference with the retain ranking) say how far that holds:

- **harm type vs harm type**: the sets found from different harm types' prompts;
- **ceiling**: two sets found from disjoint random prompt groups of the same size drawn from the
  pooled harmful prompts (types ignored): what two samples of one population share;
- **harm type vs benign**: a harm type's set against the set of benign requests in the *same*
  chat format and completion prefix (:func:`moralkit.data.harmful.benign_requests`), so format
  alone cannot make them overlap less; the old plain-text benign set is shown beside it.

Each overlap is placed between **chance** (two random sets of those sizes: 0) and the ceiling
(1): ``position = (J - chance) / (J_ceiling - chance_ceiling)``. Shared across types means a
position near 1; distinct from benign a benign position near 0; the claim's number is their
difference. Intervals come from **prompt resamples**: each draw resamples every group's prompts
with replacement (ceiling groups from disjoint random halves of the pool) and rebuilds the sets.

Rebuilding a set needs its prompts' summed scores; :mod:`moralkit.pruning.candidates` keeps them
on a candidate universe per matrix and certifies each rebuilt set exact where no weight outside
it can enter. ``certified`` (the share of certified matrices over the rebuilt sets) and
``fidelity`` (the rebuilt observed sets against the exact ones) are reported; the chapter gates
the claim on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from moralkit.pruning.candidates import CandidateSets, ExampleCandidates
from moralkit.pruning.importance import ImportanceIndex
from moralkit.pruning.masks import PruneMask, jaccard, set_difference

HARM = "harm type vs harm type"
CEILING = "ceiling: random prompt groups"
BENIGN = "harm type vs benign (same format)"
PLAIN = "harm type vs benign (plain text)"
COMPARISONS = (HARM, CEILING, BENIGN, PLAIN)


def chance_jaccard(size_a: int, size_b: int, n_weights: int) -> float:
    """Expected Jaccard of two random sets of ``size_a`` and ``size_b`` among ``n_weights``."""
    fa, fb = size_a / n_weights, size_b / n_weights
    inter = fa * fb
    union = fa + fb - inter
    return inter / union if union else float("nan")


def unity_table(groups: Mapping[str, PruneMask], benign: PruneMask) -> pd.DataFrame:
    """Jaccard overlaps of exact sets: every pair of harm-type sets, each type vs benign. One
    row per pair: ``comparison``, ``set_a``, ``set_b``, ``jaccard``, ``chance`` (random sets of
    the same sizes), ``size_a``, ``size_b``."""
    pairs = [(HARM, a, b) for a, b in combinations(groups.values(), 2)]
    pairs += [(BENIGN, g, benign) for g in groups.values()]
    return pd.DataFrame([_pair_row(kind, a, b) for kind, a, b in pairs])


def _pair_row(kind: str, a: PruneMask, b: PruneMask) -> dict:
    return {
        "comparison": kind,
        "set_a": a.label,
        "set_b": b.label,
        "jaccard": jaccard(a, b),
        "chance": chance_jaccard(a.n_pruned, b.n_pruned, a.n_weights),
        "size_a": a.n_pruned,
        "size_b": b.n_pruned,
    }


def _jaccard_ids(a: np.ndarray, b: np.ndarray) -> float:
    union = len(a) + len(b)
    if not union:
        return float("nan")
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (union - inter)


def _counts(members: Sequence[int], n: int) -> np.ndarray:
    return np.bincount(np.asarray(members, dtype=np.int64), minlength=n)


@dataclass(frozen=True)
class UnityDraws:
    """The resampling of one model's unity (module doc): ``n_draws`` draws of ``seed``;
    ``n_ceiling_pairs`` distinct random-group pairs are drawn for the ceiling and resampled
    with the rest (each rebuilds two sets, the costly step)."""

    n_draws: int = 1000
    n_ceiling_pairs: int = 50
    seed: int = 0


def resample_unity(
    harm: CandidateSets,
    groups: Mapping[str, Sequence[int]],
    benign: CandidateSets,
    settings: UnityDraws,
) -> pd.DataFrame:
    """One row per draw: the mean Jaccard and chance of harm-type pairs, of the ceiling pair and
    of harm type vs benign, from sets rebuilt on resampled prompts."""
    rng = np.random.default_rng(settings.seed)
    n_harm, n_benign = len(harm.cands), len(benign.cands)
    size = min(len(m) for m in groups.values())
    pool = np.array(sorted({i for m in groups.values() for i in m}))
    memo: dict[tuple, tuple[float, float]] = {}

    def stats(a: tuple[CandidateSets, np.ndarray], b: tuple[CandidateSets, np.ndarray]):
        key = (id(a[0]), tuple(a[1]), id(b[0]), tuple(b[1]))
        if key not in memo:
            ids_a, ids_b = a[0].ids(a[1]), b[0].ids(b[1])
            chance = chance_jaccard(len(ids_a), len(ids_b), harm.n_weights)
            memo[key] = (_jaccard_ids(ids_a, ids_b), chance)
        return memo[key]

    pairs = [_ceiling_pair(rng, pool, size, n_harm) for _ in range(settings.n_ceiling_pairs)]
    ceilings = [stats((harm, x), (harm, y)) for x, y in pairs]
    rows = []
    for _ in range(settings.n_draws):
        types = [(harm, _counts(rng.choice(m, len(m)), n_harm)) for m in groups.values()]
        ben = (benign, _counts(rng.choice(n_benign, n_benign), n_benign))
        harm_pairs = [stats(a, b) for a, b in combinations(types, 2)]
        benign_pairs = [stats(t, ben) for t in types]
        ceiling = ceilings[rng.integers(len(ceilings))]
        rows.append(
            {
                "j_harm": np.mean([j for j, _ in harm_pairs]),
                "chance_harm": np.mean([c for _, c in harm_pairs]),
                "j_ceiling": ceiling[0],
                "chance_ceiling": ceiling[1],
                "j_benign": np.mean([j for j, _ in benign_pairs]),
                "chance_benign": np.mean([c for _, c in benign_pairs]),
            }
        )
    return pd.DataFrame(rows)


def _ceiling_pair(rng, pool: np.ndarray, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two groups of ``size`` prompts drawn with replacement from disjoint random halves of
    ``pool`` (the types ignored)."""
    order = rng.permutation(pool)
    half_a, half_b = order[: len(pool) // 2], order[len(pool) // 2 :]
    return _counts(rng.choice(half_a, size), n), _counts(rng.choice(half_b, size), n)


def positions(draws: pd.DataFrame) -> pd.DataFrame:
    """Per draw: the harm-type and benign overlaps' positions between chance (0) and the
    ceiling (1), and their difference (``gap``); NaN where the ceiling is not above chance."""
    span = draws["j_ceiling"] - draws["chance_ceiling"]
    span = span.where(span > 0)
    harm = (draws["j_harm"] - draws["chance_harm"]) / span
    benign = (draws["j_benign"] - draws["chance_benign"]) / span
    return pd.DataFrame({"harm": harm, "benign": benign, "gap": harm - benign, "span": span})


def unity_tables(
    model: str,
    scores: Mapping[str, ImportanceIndex],
    candidates: Mapping[str, ExampleCandidates],
    data,
    config,
) -> dict[str, pd.DataFrame]:
    """Chapter 10's unity for one model: ``unity_pairs`` (exact sets of the observed groups,
    pair by pair), ``unity`` (per comparison: observed Jaccard, chance, interval over prompt
    resamples, position between chance and ceiling) and ``unity_summary`` (the positions of
    the harm-type and benign overlaps, their gap, the ceiling above chance, the candidate sets'
    fidelity), from :func:`resample_unity`."""
    retain = scores["retain"]
    kept = retain.membership(config.p) if config.p > 0 else {}

    def exact(name: str, label: str) -> PruneMask:
        return set_difference(scores[name], retain, config.p, config.q, label=label)

    groups = {g: exact(f"group:{g}", f"group {g}") for g in config.unity_groups}
    benign = exact("benign", "benign (same format)")
    pairs = unity_table(groups, benign)
    if "benign-text" in scores:
        plain = exact("benign-text", "benign (plain text)")
        pairs = pd.concat(
            [pairs, pd.DataFrame([_pair_row(PLAIN, g, plain) for g in groups.values()])]
        )
    members = {g: [i for i, x in enumerate(data.groups) if x == g] for g in config.unity_groups}
    harm_sets = CandidateSets(candidates["harmful"], config.q, kept)
    benign_sets = CandidateSets(candidates["benign"], config.q, kept)
    settings = UnityDraws(config.n_unity_draws, config.unity_ceiling_pairs, config.seed)
    draws = resample_unity(harm_sets, members, benign_sets, settings)
    fidelity = [
        _jaccard_ids(
            harm_sets.ids(_counts(members[g], len(harm_sets.cands))), harm_sets.from_mask(m)
        )
        for g, m in groups.items()
    ]
    everyone = np.ones(len(benign_sets.cands), dtype=np.int64)
    fidelity.append(_jaccard_ids(benign_sets.ids(everyone), benign_sets.from_mask(benign)))
    certified = min(harm_sets.certified_share(), benign_sets.certified_share())
    summary = _summary(draws, float(np.min(fidelity)), certified)
    return {
        "unity": _per_comparison(pairs, draws).assign(model=model),
        "unity_pairs": pairs.assign(model=model).reset_index(drop=True),
        "unity_summary": summary.assign(model=model),
    }


def _interval(values: pd.Series, confidence: float = 0.95) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.empty:
        return float("nan"), float("nan")
    tail = 50 * (1 - confidence)
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _per_comparison(pairs: pd.DataFrame, draws: pd.DataFrame) -> pd.DataFrame:
    observed = pairs.groupby("comparison", sort=False)[["jaccard", "chance"]].mean()
    span = (draws["j_ceiling"] - draws["chance_ceiling"]).mean()
    rows = []
    for comparison, j, c in (
        (HARM, "j_harm", "chance_harm"),
        (CEILING, "j_ceiling", "chance_ceiling"),
        (BENIGN, "j_benign", "chance_benign"),
    ):
        low, high = _interval(draws[j])
        row = observed.loc[comparison] if comparison in observed.index else None
        rows.append(
            {
                "comparison": comparison,
                "jaccard": float(row["jaccard"]) if row is not None else float(draws[j].mean()),
                "chance": float(row["chance"]) if row is not None else float(draws[c].mean()),
                "resampled_mean": float(draws[j].mean()),
                "ci_low": low,
                "ci_high": high,
                "position": float((draws[j] - draws[c]).mean() / span) if span > 0 else np.nan,
                "n_draws": len(draws),
            }
        )
    if PLAIN in observed.index:
        plain = observed.loc[PLAIN]
        rows.append({"comparison": PLAIN, "jaccard": plain["jaccard"], "chance": plain["chance"]})
    return pd.DataFrame(rows)


def _summary(draws: pd.DataFrame, fidelity: float, certified: float) -> pd.DataFrame:
    """One row: positions (point: from the draws' means; interval: over draws), gap, ceiling."""
    per_draw = positions(draws)
    span = (draws["j_ceiling"] - draws["chance_ceiling"]).mean()
    harm = (draws["j_harm"] - draws["chance_harm"]).mean() / span if span > 0 else np.nan
    benign = (draws["j_benign"] - draws["chance_benign"]).mean() / span if span > 0 else np.nan
    row = {"position_harm": harm, "position_benign": benign, "gap": harm - benign}
    for name, column in (("position_harm", "harm"), ("position_benign", "benign"), ("gap", "gap")):
        row[f"{name}_ci_low"], row[f"{name}_ci_high"] = _interval(per_draw[column])
    row["ceiling_above_chance"] = float(span)
    row["ceiling_ci_low"], row["ceiling_ci_high"] = _interval(per_draw["span"].fillna(0.0))
    row["undefined_draws"] = int(per_draw["gap"].isna().sum())
    row["n_draws"], row["fidelity"], row["certified"] = len(draws), fidelity, certified
    return pd.DataFrame([row])
