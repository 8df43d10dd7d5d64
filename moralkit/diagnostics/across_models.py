"""Comparing diagnostics across models: scale, alignment and offline twin conditions.

paper-methods §2.6, §3.2. The paper's claim that indifference "persists regardless of scaling,
architecture, or safety alignment" rests on visual comparison only; no test script exists
(paper-methods §9 item 11). This module turns the per-layer diagnostic tables into one tidy
schema and adds the statistics:

Curves schema (one row per model x diagnostic x metric x layer)::

    model, diagnostic, metric, layer, relative_depth, value, better, anchor

``better`` is "lower" or "higher" (which direction of ``value`` is the model's best layer);
``anchor`` names the metric whose best layer defines this metric's headline layer (itself by
default; the categorical virtue–vice cosine is read at the layer with the lowest mean
off-diagonal cosine, as in the paper). :func:`collect_headlines` reduces curves to one
headline row per model x diagnostic x metric.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.categorical import CategoricalResult, categorical_indifference
from moralkit.diagnostics.centring import check_alignment
from moralkit.diagnostics.gradient import GradientResult, gradient_indifference
from moralkit.records import MoralRecords

CURVE_COLUMNS: tuple[str, ...] = (
    "model",
    "diagnostic",
    "metric",
    "layer",
    "relative_depth",
    "value",
    "better",
    "anchor",
)
#: Default within-family contrasts for the alignment test: (treated, reference) stages.
ALIGNMENT_CONTRASTS: tuple[tuple[str, str], ...] = (("instruct", "base"), ("guard", "instruct"))
EXACT_SIGN_FLIP_MAX_N = 16
#: System prompt of the offline "prompted alignment" condition (chat models only).
SAFETY_SYSTEM_PROMPT = (
    "You are a helpful, honest and harmless assistant. Refuse anything harmful or unethical."
)


@dataclass
class ConditionConfig:
    """Offline stand-ins for the paper's scale/alignment comparison (paper-methods §3.2).

    Without the paper's 23 models, chapter 06 compares each offline model with its
    *untrained twin* (same architecture and tokenizer, random weights) and, for chat models,
    with *prompted alignment* (the same statements inside the chat template after a safety
    system prompt). Both need fresh activations, so they run on stratified subsets of the
    records (``*_sample_scale``, relative to the paper's caps) to keep CPU time down.
    """

    untrained_twins: bool = True
    prompted_alignment: bool = True
    twin_sample_scale: float = 0.05
    prompted_sample_scale: float = 0.03
    system_prompt: str = SAFETY_SYSTEM_PROMPT


def curves_from_table(
    table: pd.DataFrame,
    diagnostic: str,
    metrics: Mapping[str, str],
    anchors: Mapping[str, str] | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Melt a per-layer tidy table into the curves schema.

    ``metrics`` maps a column of ``table`` to its ``better`` direction ("lower"/"higher");
    ``anchors`` optionally maps a metric to the metric whose best layer it is read at.
    ``table`` needs columns ``model`` (or pass ``model``), ``layer`` and ``relative_depth``.
    Works for any diagnostic's per-layer table (structural, dimensional, ...).
    """
    table = table.copy()
    if model is not None:
        table["model"] = model
    needed = ["model", "layer", "relative_depth", *metrics]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{diagnostic} table lacks columns {missing}")
    bad = {m: b for m, b in metrics.items() if b not in ("lower", "higher")}
    if bad:
        raise ValueError(f"'better' must be 'lower' or 'higher', got {bad}")
    anchors = dict(anchors or {})
    unknown = {a for a in anchors.values() if a not in metrics}
    if unknown:
        raise ValueError(f"anchor metrics {unknown} are not among the metrics {list(metrics)}")
    long = table.melt(
        id_vars=["model", "layer", "relative_depth"],
        value_vars=list(metrics),
        var_name="metric",
        value_name="value",
    )
    long["diagnostic"] = diagnostic
    long["better"] = long["metric"].map(metrics)
    long["anchor"] = long["metric"].map(lambda m: anchors.get(m, m))
    return long[list(CURVE_COLUMNS)]


def categorical_curves(result: CategoricalResult) -> pd.DataFrame:
    """Curves of the categorical diagnostic (paper-methods §2.2): mean off-diagonal centre
    cosine (lower is better, defines the optimal layer) and mean virtue–vice cosine (read at
    that optimal layer)."""
    return curves_from_table(
        result.by_layer,
        "categorical",
        {"mean_offdiag_cosine": "lower", "mean_virtue_vice_cosine": "lower"},
        anchors={"mean_virtue_vice_cosine": "mean_offdiag_cosine"},
    )


def gradient_curves(result: GradientResult, category: str = "overall") -> pd.DataFrame:
    """Curves of the gradient diagnostic (paper-methods §2.3): Spearman rho per variant
    (metric ``spearman_paper`` / ``spearman_heldout``), higher is better (peak layer)."""
    rows = result.by_layer[result.by_layer["category"] == category]
    wide = rows.pivot_table(
        index=["model", "layer", "relative_depth"], columns="variant", values="spearman"
    )
    wide.columns = [f"spearman_{v}" for v in wide.columns]
    return curves_from_table(wide.reset_index(), "gradient", dict.fromkeys(wide.columns, "higher"))


def stack_curves(*curves: pd.DataFrame) -> pd.DataFrame:
    """Concatenate curves tables after checking the schema."""
    for i, c in enumerate(curves):
        missing = [col for col in CURVE_COLUMNS if col not in c.columns]
        if missing:
            raise ValueError(f"curves table {i} lacks columns {missing}")
    if not curves:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat([c[list(CURVE_COLUMNS)] for c in curves], ignore_index=True)


def collect_headlines(*curves: pd.DataFrame) -> pd.DataFrame:
    """One headline per model x diagnostic x metric at the model's best layer (paper §3.2).

    The best layer of a metric is that of its ``anchor`` metric (the minimum or maximum of the
    anchor's curve, per ``better``). Returns the curves schema restricted to those rows.
    """
    table = stack_curves(*curves).dropna(subset=["value"])
    best_layers = {}
    for (model, diagnostic, metric), g in table.groupby(["model", "diagnostic", "metric"]):
        pick = g["value"].idxmin() if g["better"].iloc[0] == "lower" else g["value"].idxmax()
        best_layers[(model, diagnostic, metric)] = g.loc[pick, "layer"]
    rows = []
    for (model, diagnostic, _metric), g in table.groupby(["model", "diagnostic", "metric"]):
        anchor = g["anchor"].iloc[0]
        layer = best_layers.get((model, diagnostic, anchor))
        if layer is None:
            raise ValueError(f"anchor metric {anchor!r} has no values for {model}/{diagnostic}")
        at = g[g["layer"] == layer]
        if not at.empty:  # the metric may be undefined at its anchor's best layer
            rows.append(at.iloc[0])
    if not rows:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.DataFrame(rows).reset_index(drop=True)


def model_groups(models: Sequence[str]) -> pd.DataFrame:
    """Family, alignment stage and size of registry models, for the §3.2 comparisons.

    Returns columns model, family (registry family plus size, e.g. "Qwen3 8.2B": the unit
    within which Base / Instruct / Guard are paired), stage (the paper's group, lower case:
    base / instruct / guard / offline), params_b and architecture. Unknown names raise.
    """
    from moralkit.models.registry import get_model_spec

    rows = []
    for name in models:
        spec = get_model_spec(name)
        rows.append(
            {
                "model": name,
                "family": f"{spec.family} {spec.params_b:g}B",
                "stage": spec.group.lower(),
                "params_b": spec.params_b,
                "architecture": spec.architecture,
            }
        )
    return pd.DataFrame(rows, columns=["model", "family", "stage", "params_b", "architecture"])


def matched_subset(
    records: MoralRecords, acts: ActivationSet, sample_scale: float, seed: int = 42
) -> tuple[MoralRecords, ActivationSet]:
    """A stratified subset of ``records`` (paper-methods §1.5) and the matching rows of
    ``acts``, so a new condition can be paired with the existing activations."""
    from moralkit.data import stratified_subset

    ids = records.table["record_id"]
    if ids.duplicated().any():
        raise ValueError("record_id values are not unique; cannot match a subset to activations")
    check_alignment(acts, records)
    subset = stratified_subset(records, scale=sample_scale, seed=seed)
    position = pd.Series(np.arange(len(records)), index=ids.to_numpy())
    return subset, acts.take(position.loc[subset.table["record_id"].to_numpy()].to_numpy())


def diagnostic_curves(
    acts: ActivationSet,
    records: MoralRecords,
    pooling: str = "mean",
    n_permutations: int = 200,
    n_bootstrap: int = 200,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """Categorical (§2.2) and gradient (§2.3) curves of one activation set, in the curves
    schema; the model label is ``acts.model_id``."""
    categorical = categorical_indifference(
        acts, records, pooling=pooling, n_permutations=n_permutations,
        n_bootstrap=n_bootstrap, seed=seed, progress=progress,
    )  # fmt: skip
    gradient = gradient_indifference(
        acts, records, pooling=pooling, n_bootstrap=n_bootstrap, seed=seed, progress=progress
    )
    return stack_curves(categorical_curves(categorical), gradient_curves(gradient))


def offline_condition_curves(
    records: MoralRecords,
    activations: Mapping[str, ActivationSet],
    extract: Callable[..., ActivationSet],
    conditions: ConditionConfig,
    has_chat_template: Callable[[str], bool],
    pooling: str = "mean",
    seed: int = 42,
    **resampling: int,
) -> tuple[pd.DataFrame, dict[str, tuple[str, str]]]:
    """Curves of each offline model beside its twin conditions, on matched subsets.

    For every model in ``activations`` (rows aligned with ``records``): the untrained twin
    (``extract(name, subset, random_init=True, seed=seed)``) and, when the model has a chat
    template, prompted alignment (``extract(name, subset, system_prompt=...)``), each compared
    with the same model's plain activations on the same stratified subset. ``extract`` is the
    chapter's activation getter, so provenance records every extra run. Returns the stacked
    curves and the comparisons (name -> (label a, label b)) for :func:`compare_conditions`.
    """
    # (model, sample scale, extract kwargs, treated label, plain label, treated is "a")
    wanted = []
    for name in activations:
        if conditions.untrained_twins:
            wanted.append((name, conditions.twin_sample_scale, {"random_init": True, "seed": seed},
                           "untrained twin", "trained", False))  # fmt: skip
        if conditions.prompted_alignment and has_chat_template(name):
            wanted.append((name, conditions.prompted_sample_scale,
                           {"system_prompt": conditions.system_prompt},
                           "safety prompt", "plain", True))  # fmt: skip
    curves, comparisons = [], {}
    for name, scale, extra, treated_label, plain_label, treated_is_a in wanted:
        subset, plain = matched_subset(records, activations[name], scale, seed)
        treated = extract(name, subset, **extra)
        pair = {f"{name} · {treated_label}": treated, f"{name} · {plain_label}": plain}
        for label, acts in pair.items():
            curves.append(
                diagnostic_curves(
                    dataclasses.replace(acts, model_id=label),
                    subset,
                    pooling=pooling,
                    seed=seed,
                    progress=False,
                    **resampling,
                )  # fmt: skip
            )
        labels = tuple(pair) if treated_is_a else tuple(reversed(pair))
        short = {"untrained twin": "untrained", "safety prompt": "prompted"}[treated_label]
        first, second = (short, plain_label) if treated_is_a else (plain_label, short)
        comparisons[f"{name}: {first} − {second}"] = labels
    return stack_curves(*curves), comparisons


def compare_conditions(
    curves: pd.DataFrame,
    comparisons: Mapping[str, tuple[str, str]],
    n_permutations: int = 10000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired comparison of two conditions' curves, **paired over layers**.

    ``comparisons`` maps a name to (label a, label b): two ``model`` labels in ``curves``
    measured at the same layers (e.g. a trained model and its untrained twin). One row per
    comparison x diagnostic x metric with :func:`paired_condition_test`'s fields (mean of
    a - b over layers, bootstrap interval, sign-flip p-value) and ``n_pairs`` = layers.
    """
    rows = []
    for name, (label_a, label_b) in comparisons.items():
        for (diagnostic, metric), g in curves.groupby(["diagnostic", "metric"], sort=False):
            a = g[g["model"] == label_a].set_index("layer")["value"]
            b = g[g["model"] == label_b].set_index("layer")["value"]
            if a.empty or b.empty:
                continue
            rows.append(
                {
                    "comparison": name,
                    "model_a": label_a,
                    "model_b": label_b,
                    "diagnostic": diagnostic,
                    "metric": metric,
                    "paired_over": "layers",
                    **paired_condition_test(a, b, n_permutations=n_permutations, seed=seed),
                }
            )
    return pd.DataFrame(rows)


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
    and a ``note`` when there are too few pairs for the test to reach p < 0.05 (n < 5).
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
    if n < 5:
        # With n pairs the smallest exact two-sided p is 2 / 2^n: 0.0625 at n = 4.
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

    Used offline (paper-methods §3.2 substitute) for a trained model vs its untrained twin and
    plain vs prompted-alignment inputs. The pairing unit is whatever the caller aligns: in the
    chapters it is **layers** (the same layer of the same architecture under both conditions),
    or **records** for per-record quantities. Neighbouring layers are not independent, so
    with layers as units the p-value describes a consistent shift across depth, not sampling
    of new models. Pandas Series are aligned on their index first; arrays must match in length.
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
