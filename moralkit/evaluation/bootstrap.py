"""Percentile bootstrap intervals (scipy.stats.bootstrap) for rates and paired differences.

(book: Methods › Evaluation, methods/evaluation.md.) Items are resampled with replacement;
a paired difference resamples the same items in both arms, which is what makes a small
steering effect resolvable at all on a few hundred items.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def _interval(data: tuple, statistic: Callable, n_bootstrap: int, seed: int, paired: bool):
    values = [np.asarray(d, dtype=float) for d in data]
    estimate = float(statistic(*values))
    if len(values[0]) < 2 or n_bootstrap < 2:
        return estimate, float("nan"), float("nan")
    with warnings.catch_warnings():  # a constant sample gives a zero-width interval: fine
        warnings.simplefilter("ignore", category=RuntimeWarning)
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        res = stats.bootstrap(
            tuple(values),
            statistic,
            n_resamples=int(n_bootstrap),
            confidence_level=CONFIDENCE,
            method="percentile",
            paired=paired,
            vectorized=True,
            random_state=np.random.default_rng(seed),
        )
    return estimate, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def _diff(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def mean_interval(values, n_bootstrap: int, seed: int) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` and its 95% percentile-bootstrap interval."""
    return _interval((values,), _mean, n_bootstrap, seed, paired=False)


def paired_difference_interval(a, b, n_bootstrap: int, seed: int) -> tuple[float, float, float]:
    """(mean(a) − mean(b), low, high) resampling items jointly (``a``, ``b`` aligned by item)."""
    if len(a) != len(b):
        raise ValueError(f"paired arrays differ in length: {len(a)} vs {len(b)}")
    return _interval((a, b), _diff, n_bootstrap, seed, paired=True)


def ratio_interval(numerators, denominators, n_bootstrap: int, seed: int):
    """(Σnum / Σden, low, high), resampling items (e.g. perplexity from per-text NLL sums)."""

    def ratio(num, den, axis=-1):
        return np.sum(num, axis=axis) / np.sum(den, axis=axis)

    return _interval((numerators, denominators), ratio, n_bootstrap, seed, paired=True)
