"""Statistics for comparing models: scale trends and paired (within-family, within-layer) tests.

(paper §2.6, §3.2; book: Methods › Across models, methods/across-models.md) The paper compares
models visually only and releases no test script; these are the tests this companion adds.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: Default within-family contrasts for the alignment test: (treated, reference) stages.
ALIGNMENT_CONTRASTS: tuple[tuple[str, str], ...] = (("instruct", "base"), ("guard", "instruct"))
EXACT_SIGN_FLIP_MAX_N = 16


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y)[0])


def scaling_test(
    headlines: pd.DataFrame,
    params_b: Mapping[str, float],
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Does a headline change with model size? Spearman rho of headline vs log10 parameters.

    One row per diagnostic x metric: ``n`` models, ``spearman``, scipy's ``p_value``, and a
    percentile bootstrap interval over models (resamples where rho is undefined are dropped).
    With ``n < 4`` there is no inference to draw and ``note`` says so (rho is still shown).
    Models missing from ``params_b`` are left out and named in ``note``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for (diagnostic, metric), g in headlines.groupby(["diagnostic", "metric"], sort=False):
        known = g[g["model"].isin(list(params_b))]
        left_out = sorted(set(g["model"]) - set(known["model"]))
        x = np.log10(known["model"].map(params_b).to_numpy(dtype=float))
        y = known["value"].to_numpy(dtype=float)
        n = len(known)
        rho = _spearman(x, y)
        p = float(stats.spearmanr(x, y)[1]) if np.isfinite(rho) and n >= 3 else float("nan")
        low = high = float("nan")
        notes = []
        if n < 4:
            notes.append(f"n = {n} models < 4: no inference possible")
        elif n_bootstrap > 0:
            draws = rng.integers(0, n, (n_bootstrap, n))
            boot = np.array([_spearman(x[d], y[d]) for d in draws])
            if np.isfinite(boot).any():
                low, high = np.nanpercentile(boot, [2.5, 97.5])
        if left_out:
            notes.append(f"no parameter count for {left_out}")
        rows.append(
            {
                "diagnostic": diagnostic,
                "metric": metric,
                "n": n,
                "spearman": rho,
                "ci_low": low,
                "ci_high": high,
                "p_value": p,
                "note": "; ".join(notes),
            }
        )
    return pd.DataFrame(rows)


def sign_flip_p(differences: Sequence[float], n_permutations: int = 10000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value for a mean paired difference of zero.

    Exact (all 2^n sign patterns) for n <= 16, Monte Carlo with the +1 correction above.
    """
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return float("nan")
    observed = abs(d.mean())
    if n <= EXACT_SIGN_FLIP_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
        null = np.abs(signs @ d / n)
        # A small tolerance so float noise does not drop the observed pattern itself.
        return float(np.mean(null >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(n_permutations, n))
    null = np.abs(signs @ d / n)
    return float((1 + np.sum(null >= observed - 1e-12)) / (n_permutations + 1))


def paired_differences(
    headlines: pd.DataFrame,
    groups: pd.DataFrame | Mapping[str, tuple[str, str]],
    contrasts: Sequence[tuple[str, str]] = ALIGNMENT_CONTRASTS,
) -> pd.DataFrame:
    """Within-family pairs for each contrast (treated stage minus reference stage).

    ``groups`` gives each model's ``family`` and ``stage`` (e.g. base / instruct / guard):
    a DataFrame with columns model, family, stage, or a mapping model -> (family, stage). A
    pair exists where one family has a model at both stages. Returns one row per pair and
    diagnostic x metric with ``value_a`` (treated), ``value_b`` (reference) and ``difference``.
    """
    if not isinstance(groups, pd.DataFrame):
        groups = pd.DataFrame(
            [(m, f, s) for m, (f, s) in groups.items()], columns=["model", "family", "stage"]
        )
    missing = [c for c in ("model", "family", "stage") if c not in groups.columns]
    if missing:
        raise ValueError(f"groups table lacks columns {missing}")
    merged = headlines.merge(groups[["model", "family", "stage"]], on="model", how="inner")
    rows = []
    for treated, reference in contrasts:
        a = merged[merged["stage"] == treated]
        b = merged[merged["stage"] == reference]
        pairs = a.merge(b, on=["family", "diagnostic", "metric"], suffixes=("_a", "_b"))
        for _, r in pairs.iterrows():
            rows.append(
                {
                    "contrast": f"{treated} − {reference}",
                    "family": r["family"],
                    "diagnostic": r["diagnostic"],
                    "metric": r["metric"],
                    "model_a": r["model_a"],
                    "model_b": r["model_b"],
                    "value_a": r["value_a"],
                    "value_b": r["value_b"],
                    "difference": r["value_a"] - r["value_b"],
                }
            )
    columns = ["contrast", "family", "diagnostic", "metric", "model_a", "model_b"]
    return pd.DataFrame(rows, columns=[*columns, "value_a", "value_b", "difference"])


def alignment_test(
    headlines: pd.DataFrame,
    groups: pd.DataFrame | Mapping[str, tuple[str, str]],
    contrasts: Sequence[tuple[str, str]] = ALIGNMENT_CONTRASTS,
    n_permutations: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """Does alignment shift a headline? Sign-flip permutation test on within-family pairs.

    One row per contrast x diagnostic x metric: ``n_pairs``, ``mean_difference``,
    ``median_difference``, ``n_positive``, two-sided ``p_value`` (exact for up to 16 pairs)
    and a ``note`` when there are too few pairs for the test to reach p < 0.05 (n < 6).
    """
    diffs = paired_differences(headlines, groups, contrasts)
    rows = []
    for (contrast, diagnostic, metric), g in diffs.groupby(
        ["contrast", "diagnostic", "metric"], sort=False
    ):
        d = g["difference"].to_numpy(dtype=float)
        rows.append(
            {
                "contrast": contrast,
                "diagnostic": diagnostic,
                "metric": metric,
                **_paired_summary(d, n_permutations, seed),
            }
        )
    return pd.DataFrame(rows)


def _paired_summary(d: np.ndarray, n_permutations: int, seed: int) -> dict:
    d = d[np.isfinite(d)]
    n = d.size
    note = ""
    if n < 6:
        # With n pairs the smallest exact two-sided p is 2 / 2^n: 0.0625 at n = 5.
        note = f"n = {n} pairs: the smallest attainable p is {min(1.0, 2 / 2**n):.3g}"
    return {
        "n_pairs": n,
        "mean_difference": float(d.mean()) if n else float("nan"),
        "median_difference": float(np.median(d)) if n else float("nan"),
        "n_positive": int((d > 0).sum()),
        "p_value": sign_flip_p(d, n_permutations, seed),
        "note": note,
    }


def paired_condition_test(
    values_a: Sequence[float] | pd.Series,
    values_b: Sequence[float] | pd.Series,
    n_permutations: int = 10000,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> dict:
    """Compare two conditions measured on the same units: mean of ``a - b`` with a bootstrap
    95% interval and a two-sided sign-flip permutation p-value.

    Used offline (a substitute for the paper's §3.2 comparisons) for a trained model vs its
    untrained twin and plain vs safety-prompted inputs. The pairing unit is whatever the caller
    aligns: in the chapters it is **layers** (the same layer of the same architecture under both
    conditions), or **records** for per-record quantities. Neighbouring layers are not
    independent, so with layers as units the p-value describes a consistent shift across depth,
    not sampling of new models. Pandas Series are aligned on their index first; arrays must
    match in length.
    """
    if isinstance(values_a, pd.Series) and isinstance(values_b, pd.Series):
        values_a, values_b = values_a.align(values_b, join="inner")
    a = np.asarray(values_a, dtype=float)
    b = np.asarray(values_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in shape: {a.shape} vs {b.shape}")
    d = a - b
    d = d[np.isfinite(d)]
    out = _paired_summary(d, n_permutations, seed)
    out["ci_low"] = out["ci_high"] = float("nan")
    if d.size >= 2 and n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        boot = d[rng.integers(0, d.size, (n_bootstrap, d.size))].mean(axis=1)
        out["ci_low"], out["ci_high"] = (float(v) for v in np.percentile(boot, [2.5, 97.5]))
    return out
