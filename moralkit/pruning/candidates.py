"""Pruned sets rebuilt for any resample of the calibration prompts, without model-sized copies.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) The unity of
:mod:`moralkit.pruning.unity` rebuilds a set (the top ``q`` of each matrix by summed per-prompt
scores, minus the retain set) for many resamples of the prompts. Per-prompt scores are
model-sized, so each prompt's scores are kept only on a **candidate universe** ``U`` per matrix,
found in two backward passes over the prompts:

1. each prompt's ``factor`` x k highest-scoring weights (k = the ``q`` share of the matrix) and the
   score of the last of them, its *bound* (every weight outside the prompt's list scores at most
   that for it); the exact top ``factor`` x k of each observed group's summed score (the
   importance indices of the same pass) join ``U`` too;
2. every prompt's exact score at every weight of ``U``.

A rebuilt set is the top k of the summed scores over ``U``. It is **certified exact** for a matrix
when its k-th summed score exceeds the sum of the prompts' bounds (no weight outside ``U`` can
reach it); :attr:`CandidateSets.certified` is the share of certified matrices, which the chapter
reports and gates on. The observed groups' sets are exact by construction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from moralkit.io import atomic_path
from moralkit.paths import cache_root
from moralkit.pruning.calibration import CalibrationSet
from moralkit.pruning.importance import (
    ImportanceConfig,
    ImportanceIndex,
    cache_file,
    gradient_scores_parts,
    importance_indices,
    linear_layers,
)
from moralkit.pruning.masks import PruneMask
from moralkit.pruning.ranking import largest

if TYPE_CHECKING:
    from moralkit.models import LoadedModel


@dataclass
class ExampleCandidates:
    """Per matrix: the candidate positions ``positions[name]`` (flat indices), every prompt's
    score there ``values[name]`` (prompts x positions) and each prompt's bound ``bounds[name]``
    (the highest score a weight outside its own list can have)."""

    positions: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    bounds: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, int]]

    def __len__(self) -> int:
        return len(next(iter(self.values.values())))

    def save(self, path: Path) -> None:
        names = list(self.shapes)
        arrays = {}
        for i, n in enumerate(names):
            arrays |= {f"p_{i}": self.positions[n], f"v_{i}": self.values[n]}
            arrays[f"b_{i}"] = self.bounds[n]
        header = json.dumps({"names": names, "shapes": self.shapes})
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, header=np.array(header), **arrays)

    @classmethod
    def load(cls, path: Path) -> ExampleCandidates:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            names = header["names"]
            parts = [{n: data[f"{x}_{i}"] for i, n in enumerate(names)} for x in "pvb"]
        return cls(*parts, {n: tuple(s) for n, s in header["shapes"].items()})


def _score(weight: torch.Tensor, grad: torch.Tensor, signed: bool) -> torch.Tensor:
    score = weight.detach().float() * grad.float()
    return (-score if signed else score.abs()).reshape(-1)


class _TopSink:
    """Pass 1: each prompt's top ``keep[name]`` positions and its bound, per matrix."""

    def __init__(self, weights, n: int, keep: Mapping[str, int], signed: bool) -> None:
        self.weights, self.keep, self.signed = weights, keep, signed
        self.top = {k: np.zeros((n, m), np.int64) for k, m in keep.items()}
        self.bounds = {k: np.zeros(n, np.float32) for k in keep}

    def __call__(self, example: int, grads: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, grad in grads.items():
                score = _score(self.weights[name], grad, self.signed).cpu().numpy()
                top = largest(score[None, :], self.keep[name], ordered=False)[0]
                self.top[name][example] = top
                self.bounds[name][example] = score[top].min()  # the k-th largest score


class _ValueSink:
    """Pass 2: every prompt's score at the candidate positions."""

    def __init__(self, weights, n: int, positions: Mapping[str, np.ndarray], signed: bool):
        self.weights, self.signed = weights, signed
        self.positions = {k: torch.as_tensor(p) for k, p in positions.items()}
        self.values = {k: np.zeros((n, len(p)), np.float32) for k, p in positions.items()}

    def __call__(self, example: int, grads: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, grad in grads.items():
                score = _score(self.weights[name], grad, self.signed)
                where = self.positions[name].to(score.device)
                self.values[name][example] = score[where].cpu().numpy()


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
    """:func:`~moralkit.pruning.importance.importance_indices` of ``parts`` and the prompts'
    :class:`ExampleCandidates` (module doc: two backward passes per prompt, the first shared
    with the indices); both cached, the candidates beside the indices and keyed alike."""
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "pruning"
    base = cache_file(loaded, calib, config, folder)
    path = base.with_name(f"{base.stem}-universe-{factor:g}-{q:g}.npz")
    if path.exists():
        indices = importance_indices(loaded, calib, parts, config, cache_dir, progress)
        return indices, ExampleCandidates.load(path)
    if config.method not in ("snip", "signed_snip"):
        raise ValueError(f"candidates need gradient scores, not {config.method!r}")
    layers = linear_layers(loaded.model)
    weights = {n: m.weight for n, m in layers.items()}
    shapes = {n: tuple(int(x) for x in w.shape) for n, w in weights.items()}
    keep = {n: max(1, int(np.ceil(factor * q * r * c))) for n, (r, c) in shapes.items()}
    signed = config.method == "signed_snip"
    first = _TopSink(weights, len(calib), keep, signed)
    indices = importance_indices(loaded, calib, parts, config, cache_dir, progress, first)
    group_top = [ix.select(min(factor * q, ix.keep)) for ix in indices.values()]
    positions = {
        n: np.unique(np.concatenate([first.top[n].ravel(), *(g[n] for g in group_top)]))
        for n in shapes
    }
    second = _ValueSink(weights, len(calib), positions, signed)
    gradient_scores_parts(
        loaded, calib, {"all": range(len(calib))}, signed, config.max_tokens, progress, second
    )
    candidates = ExampleCandidates(positions, second.values, first.bounds, shapes)
    candidates.save(path)
    return indices, candidates


class CandidateSets:
    """Sets rebuilt from :class:`ExampleCandidates` for any multiset of prompts, memoised: the
    top ``q`` of each matrix by summed scores over the candidates, minus the ``kept`` (retain)
    weights; :attr:`certified` collects, per set, the share of matrices certified exact."""

    def __init__(self, cands: ExampleCandidates, q: float, kept: Mapping[str, np.ndarray]) -> None:
        self.cands, self.q, self.kept = cands, q, kept
        sizes = [r * c for r, c in cands.shapes.values()]
        self.offsets = dict(zip(cands.shapes, np.cumsum([0, *sizes[:-1]]), strict=True))
        self.n_weights = int(sum(sizes))
        self._memo: dict[tuple[int, ...], np.ndarray] = {}
        self.certified: dict[tuple[int, ...], float] = {}

    def ids(self, counts: Sequence[int]) -> np.ndarray:
        """Sorted global weight ids of the set built from ``counts`` (copies per prompt)."""
        key = tuple(int(c) for c in counts)
        if key not in self._memo:
            self._memo[key] = self._build(np.asarray(key, dtype=np.float64))
        return self._memo[key]

    def _build(self, counts: np.ndarray) -> np.ndarray:
        out, exact, total = [], 0, 0
        used = np.flatnonzero(counts)
        for name, (rows, cols) in self.cands.shapes.items():
            k = int(self.q * rows * cols)
            if k == 0 or not len(used):
                continue
            sums = counts[used] @ self.cands.values[name][used]
            where = self.cands.positions[name]
            best = np.argpartition(-sums, k - 1)[:k] if len(sums) > k else np.arange(len(sums))
            total += 1
            exact += bool(sums[best].min() > counts[used] @ self.cands.bounds[name][used])
            top = where[best]
            if name in self.kept:
                top = top[~self.kept[name][top]]
            out.append(top + self.offsets[name])
        self.certified[tuple(int(c) for c in counts)] = exact / total if total else 1.0
        return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)

    def from_mask(self, mask: PruneMask) -> np.ndarray:
        """The global ids of an exact mask, in this object's numbering."""
        parts = [idx + self.offsets[n] for n, idx in mask.indices.items() if len(idx)]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def certified_share(self) -> float:
        """Mean over the sets built so far of their share of certified-exact matrices."""
        return float(np.mean(list(self.certified.values()))) if self.certified else 1.0
