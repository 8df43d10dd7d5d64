"""Claims of no effect across models: scale and alignment do not reshape indifference.

(paper §3.2; book: Methods › Across models, methods/across-models.md) The paper compares models
by eye. Here "no effect" is an equivalence claim (``claims.yaml``: a margin in the headline's
units, with why): the effect of scale is the change of each claimed headline across a stage's
size ladder (Theil–Sen slope against log10 parameters times the decades spanned, Sen's
interval scaled alike), the effect of alignment the mean within-family shift (t interval). Each
claim takes the largest absolute effect and the envelope of the |effect| intervals; too few
models or pairs is a failed gate (inconclusive), not "no effect".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from moralkit.diagnostics.model_statistics import sign_flip_p
from moralkit.results import ClaimValue, Gate

#: the headline each indifference claim judges (metric name or prefix; chapter 11 uses it too)
INDIFFERENCE_METRICS: dict[str, str] = {
    "categorical": "virtue_vice_cosine",
    "gradient": "spearman_paper",
    "structural": "ari_mft15",
    "dimensional": "r2_",
}


def claimed_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the headlines the indifference claims judge (trained weights only)."""
    if table.empty:
        return table
    metric = table["metric"].astype(str)
    keep = pd.Series(False, index=table.index)
    for diagnostic, prefix in INDIFFERENCE_METRICS.items():
        keep |= (table["diagnostic"] == diagnostic) & metric.str.startswith(prefix)
    return table[keep & ~metric.str.endswith("_untrained")]


def _magnitude(low: float, high: float) -> tuple[float, float]:
    """The interval of |effect| from the interval of the effect."""
    if low > 0:
        return low, high
    if high < 0:
        return -high, -low
    return 0.0, max(-low, high)


def _largest_effect(claim_id: str, effects: pd.DataFrame, gate: Gate, what: str) -> ClaimValue:
    """The largest absolute effect over rows with the envelope of their |effect| intervals:
    agrees only if every row's lies inside the margin, disagrees if any lies wholly above."""
    bounds = [
        _magnitude(lo, hi) for lo, hi in zip(effects["ci_low"], effects["ci_high"], strict=True)
    ]
    effects = effects.assign(abs_low=[b[0] for b in bounds], abs_high=[b[1] for b in bounds])
    top = effects.loc[effects["effect"].abs().idxmax()]
    note = (
        f"largest |{what}|: {top['effect']:+.3f} ({top['diagnostic']} {top['metric']}, "
        f"{top['unit']}); {len(effects)} headline(s); {gate.detail}"
    )
    return ClaimValue(
        claim_id,
        round(float(abs(top["effect"])), 4),
        note,
        {"tests": effects.round(4).to_dict("records")},
        ci_low=float(effects["abs_low"].max()),
        ci_high=float(effects["abs_high"].max()),
        gates=[gate],
    )


def scale_claim(headlines: pd.DataFrame, settings: Mapping) -> ClaimValue | None:
    """Change of each claimed headline across a stage's size ladder: Theil–Sen slope against
    log10 parameters times the decades spanned, with Sen's interval scaled alike."""
    rows = []
    for (stage, diagnostic, metric), g in headlines.groupby(
        ["stage", "diagnostic", "metric"], sort=False
    ):
        g = g.dropna(subset=["value", "params_b"])
        x = np.log10(g["params_b"].to_numpy(dtype=float))
        if len(np.unique(x)) < 2:
            continue
        fit = stats.theilslopes(g["value"].to_numpy(dtype=float), x, alpha=settings["level"])
        span = float(x.max() - x.min())
        rows.append(
            {
                "unit": f"stage {stage}",
                "diagnostic": diagnostic,
                "metric": metric,
                "n": len(g),
                "effect": fit.slope * span,
                "ci_low": fit.low_slope * span,
                "ci_high": fit.high_slope * span,
            }
        )
    gate = ("enough_models", int(settings["min_models"]), "models in one stage's size ladder")
    return _gated_claim("scale_no_effect", rows, gate, "change across sizes")


def alignment_claim(pairs: pd.DataFrame, settings: Mapping) -> ClaimValue | None:
    """Mean within-family shift of each claimed headline per contrast, with its t interval."""
    rows = []
    for (contrast, diagnostic, metric), g in pairs.groupby(
        ["contrast", "diagnostic", "metric"], sort=False
    ):
        d = g["difference"].to_numpy(dtype=float)
        d = d[np.isfinite(d)]
        if d.size < 2:
            continue
        if np.ptp(d) == 0:  # a constant shift: its interval is the shift itself
            low = high = float(d[0])
        else:
            ci = stats.ttest_1samp(d, 0.0).confidence_interval(settings["level"])
            low, high = float(ci.low), float(ci.high)
        rows.append(
            {
                "unit": str(contrast),
                "diagnostic": diagnostic,
                "metric": metric,
                "n": d.size,
                "effect": float(d.mean()),
                "ci_low": low,
                "ci_high": high,
                "sign_flip_p": sign_flip_p(d),
            }
        )
    gate = ("enough_pairs", int(settings["min_pairs"]), "within-family pairs in one contrast")
    return _gated_claim("alignment_no_effect", rows, gate, "mean shift")


def _gated_claim(
    claim_id: str, rows: list[dict], gate: tuple[str, int, str], what: str
) -> ClaimValue | None:
    """The claim over the rows with at least ``need`` units (``gate``: name, need, what they
    are); when none has enough, over all rows with the gate failed (inconclusive)."""
    if not rows:
        return None
    name, need, counted = gate
    table = pd.DataFrame(rows)
    enough = table[table["n"] >= need]
    detail = f"at most {int(table['n'].max())} {counted} (need {need})"
    passed = Gate(name, len(enough) > 0, detail)
    return _largest_effect(claim_id, enough if len(enough) else table, passed, what)
