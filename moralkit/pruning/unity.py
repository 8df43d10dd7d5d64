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

Rebuilding a set needs its prompts' summed scores. Dense per-prompt scores are model-sized, so
each prompt keeps only its ``candidate_factor`` x k highest-scoring weights per matrix
(:class:`ExampleCandidates`, k = the q share of the matrix); a set is the top k of the summed
candidate scores (a weight a prompt did not keep counts 0 for it). ``fidelity`` compares these
sets with the exact ones of the observed groups; the chapter gates the claim on it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from moralkit.data.fetch import default_cache_dir
from moralkit.io import atomic_path
from moralkit.pruning.calibration import CalibrationSet
from moralkit.pruning.importance import (
    ImportanceConfig,
    ImportanceIndex,
    cache_file,
    importance_indices,
    linear_layers,
)
from moralkit.pruning.masks import PruneMask, jaccard, set_difference

if TYPE_CHECKING:
    from moralkit.models import LoadedModel

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


@dataclass
class ExampleCandidates:
    """Per prompt, the highest-scoring weights of each matrix: ``idx[name]`` and ``val[name]``
    of shape (prompts, kept); flat indices within the matrix."""

    idx: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, int]]

    def __len__(self) -> int:
        return len(next(iter(self.idx.values())))

    def save(self, path: Path) -> None:
        names = list(self.shapes)
        arrays = {f"idx_{i}": self.idx[n] for i, n in enumerate(names)}
        arrays |= {f"val_{i}": self.val[n] for i, n in enumerate(names)}
        header = json.dumps({"names": names, "shapes": self.shapes})
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, header=np.array(header), **arrays)

    @classmethod
    def load(cls, path: Path) -> ExampleCandidates:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            names = header["names"]
            idx = {n: data[f"idx_{i}"] for i, n in enumerate(names)}
            val = {n: data[f"val_{i}"] for i, n in enumerate(names)}
        return cls(idx, val, {n: tuple(s) for n, s in header["shapes"].items()})


class CandidateSink:
    """Collects :class:`ExampleCandidates` from one backward pass per prompt: called with each
    prompt's gradients (:func:`moralkit.pruning.importance.gradient_scores_parts`), it keeps
    the top ``ceil(factor * q * size)`` scores of each matrix (signed SNIP ``-W * g``, or
    ``|W * g|`` unsigned)."""

    def __init__(
        self, weights: Mapping[str, torch.Tensor], n: int, q: float, factor: float, signed: bool
    ) -> None:
        self.weights, self.signed = weights, signed
        self.shapes = {k: tuple(int(x) for x in w.shape) for k, w in weights.items()}
        self.keep = {
            k: max(1, int(np.ceil(factor * q * r * c))) for k, (r, c) in self.shapes.items()
        }
        self.idx = {k: np.zeros((n, m), np.int64) for k, m in self.keep.items()}
        self.val = {k: np.zeros((n, m), np.float32) for k, m in self.keep.items()}
        self.seen: set[int] = set()

    def __call__(self, example: int, grads: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, grad in grads.items():
                score = self.weights[name].float() * grad.float()
                score = -score if self.signed else score.abs()
                top = torch.topk(score.reshape(-1), self.keep[name])
                self.idx[name][example] = top.indices.cpu().numpy()
                self.val[name][example] = top.values.cpu().numpy()
        self.seen.add(example)

    def result(self) -> ExampleCandidates:
        missing = sorted(set(range(len(next(iter(self.idx.values()))))) - self.seen)
        if missing:
            raise RuntimeError(f"no gradient was collected for examples {missing[:5]}")
        return ExampleCandidates(self.idx, self.val, self.shapes)


class CandidateSets:
    """Sets rebuilt from :class:`ExampleCandidates` for any multiset of prompts, memoised: the
    top ``q`` of each matrix by summed candidate scores, minus the ``kept`` (retain) weights."""

    def __init__(self, cands: ExampleCandidates, q: float, kept: Mapping[str, np.ndarray]) -> None:
        self.cands, self.q, self.kept = cands, q, kept
        sizes = [r * c for r, c in cands.shapes.values()]
        self.offsets = dict(zip(cands.shapes, np.cumsum([0, *sizes[:-1]]), strict=True))
        self.n_weights = int(sum(sizes))
        self._memo: dict[tuple[int, ...], np.ndarray] = {}

    def ids(self, counts: Sequence[int]) -> np.ndarray:
        """Sorted global weight ids of the set built from ``counts`` (copies per prompt)."""
        key = tuple(int(c) for c in counts)
        if key not in self._memo:
            self._memo[key] = self._build(np.asarray(key))
        return self._memo[key]

    def _build(self, counts: np.ndarray) -> np.ndarray:
        used = np.flatnonzero(counts)
        out = []
        for name, (rows, cols) in self.cands.shapes.items():
            k = int(self.q * rows * cols)
            if k == 0 or not len(used):
                continue
            idx = self.cands.idx[name][used].ravel()
            val = (self.cands.val[name][used] * counts[used, None]).ravel()
            uniq, inverse = np.unique(idx, return_inverse=True)
            sums = np.bincount(inverse, weights=val)
            top = uniq if len(uniq) <= k else uniq[np.argpartition(-sums, k - 1)[:k]]
            if name in self.kept:
                top = top[~self.kept[name][top]]
            out.append(top + self.offsets[name])
        return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)

    def from_mask(self, mask: PruneMask) -> np.ndarray:
        """The global ids of an exact mask, in this object's numbering."""
        parts = [idx + self.offsets[n] for n, idx in mask.indices.items() if len(idx)]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


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


def scores_with_candidates(
    loaded: LoadedModel,
    calib: CalibrationSet,
    parts: Mapping[str, Sequence[int]],
    config: ImportanceConfig,
    q: float,
    factor: float,
    progress: bool = False,
    cache_dir: str | Path | None = None,
) -> tuple[dict[str, ImportanceIndex], ExampleCandidates]:
    """:func:`~moralkit.pruning.importance.importance_indices` of ``parts`` and every prompt's
    :class:`ExampleCandidates` (``factor`` x the ``q`` share of each matrix) from the same
    backward passes; both cached (the candidates beside the indices, keyed alike)."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "pruning"
    base = cache_file(loaded, calib, config, folder)
    path = base.with_name(f"{base.stem}-candidates-{factor:g}-{q:g}.npz")
    if path.exists():
        indices = importance_indices(loaded, calib, parts, config, cache_dir, progress)
        return indices, ExampleCandidates.load(path)
    weights = {n: m.weight for n, m in linear_layers(loaded.model).items()}
    signed = config.method == "signed_snip"
    sink = CandidateSink(weights, len(calib), q, factor, signed)
    indices = importance_indices(loaded, calib, parts, config, cache_dir, progress, sink)
    candidates = sink.result()
    candidates.save(path)
    return indices, candidates


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
    summary = _summary(draws, float(np.min(fidelity)))
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


def _summary(draws: pd.DataFrame, fidelity: float) -> pd.DataFrame:
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
    row["n_draws"], row["fidelity"] = len(draws), fidelity
    return pd.DataFrame([row])
