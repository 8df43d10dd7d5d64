"""The positive control: each diagnostic run on a contrast every language model encodes.

(book: Methods › Power, controls and stability, methods/power.md.) A diagnostic that reports
"no structure" is evidence of indifference only if it finds structure where structure exists.
The control is moral *valence*: 500 Social-Chem-101 actions judged from very bad to very good
(:mod:`moralkit.data.judged`; the paper's own source, both signs, the paper's text form),
read by the same model at the **same layer** the moral verdict is based on, through the same
diagnostic code:

- categorical: separation of the good and bad centres (very good vs very bad actions) from the
  label-permutation null; detected when the one-sided permutation p < alpha;
- gradient: Spearman rho between closeness to the good / bad centre and |judgment| (neutral
  actions as zero anchors), paper variant; detected when the bootstrap intervals of both the
  paper and the held-out variant lie above 0 (so circularity alone cannot pass it);
- structural: ARI of the HDBSCAN clusters against good / neutral / bad; detected when its
  label-permutation p < alpha;
- dimensional: out-of-fold R² of the ridge probe predicting the good and bad intensities;
  detected when its bootstrap interval lies above 0.

If the control is not detected, the moral verdict is inconclusive: the diagnostic (or the
sample) did not find structure where structure exists.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from moralkit.activation_set import ActivationSet
from moralkit.data.judged import JUDGED_SOURCE
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult

#: The name the claim's ``control`` entry carries.
CONTROL_NAME = f"moral valence ({JUDGED_SOURCE}: very bad .. very good actions)"
CONTROL_COLUMNS: tuple[str, ...] = (
    "model", "diagnostic", "layer", "name", "metric", "value", "ci_low", "ci_high", "p",
    "detected", "n_records", "detail", "source_files",
)  # fmt: skip


@dataclass
class ControlResult(AnalysisResult):
    """Positive controls: one row per model x diagnostic (:data:`CONTROL_COLUMNS`).

    ``best()`` is that table; :meth:`for_model` gives the claim's ``control`` entry.
    """

    TABLES = ("control",)
    NO_CLAIM = (
        "a positive control is evidence behind a diagnostic's claim, not a claim: it is "
        "recorded with that claim by the diagnostic's claim(control=...)"
    )
    BEST_TABLE = "control"
    BEST_COLUMN = "value"
    BEST_GROUP = ("model", "diagnostic")

    def for_model(self, model: str, diagnostic: str | None = None) -> dict[str, Any]:
        """The verdict interface's ``control`` dict of one model; KeyError if not run."""
        t = self.tables["control"]
        rows = t[t["model"] == model]
        if diagnostic is not None:
            rows = rows[rows["diagnostic"] == diagnostic]
        if rows.empty:
            raise KeyError(f"no positive control for model {model!r}")
        row = rows.iloc[0]

        def number(x: Any) -> float | None:
            return round(float(x), 4) if pd.notna(x) else None

        return {
            "name": str(row["name"]),
            "value": number(row["value"]),
            "ci_low": number(row["ci_low"]),
            "ci_high": number(row["ci_high"]),
            "detected": bool(row["detected"]),
            "detail": str(row["detail"]),
        }


def _categorical(acts, records, layer, config, alpha, n_bootstrap) -> dict:
    from moralkit.diagnostics.categorical import categorical_indifference

    cfg = dataclasses.replace(config, layers=[layer], n_bootstrap=n_bootstrap)
    row = categorical_indifference(acts, records, cfg)["by_layer"].iloc[0]
    p = float(row["p_separated"])
    detail = (
        f"very good vs very bad centre cosine {row['mean_virtue_vice_cosine']:.3f}, null centre "
        f"{row['null_centre']:.3f} ({cfg.n_permutations} label shuffles); one-sided p = {p:.3g}"
    )
    return {
        "metric": "separation (cosine)",
        "value": row["separation"],
        "ci_low": row["separation_ci_low"],
        "ci_high": row["separation_ci_high"],
        "p": p,
        "detected": p < alpha,
        "detail": detail,
    }


def _gradient(acts, records, layer, config, alpha, n_bootstrap) -> dict:
    from moralkit.diagnostics.gradient import VARIANTS, gradient_indifference

    cfg = dataclasses.replace(
        config, layers=[layer], variants=VARIANTS, n_bootstrap=n_bootstrap, n_bootstrap_headline=0
    )
    t = gradient_indifference(acts, records, cfg)["by_layer"]
    t = t[t["category"] == "overall"].set_index("variant")
    paper, held = t.loc["paper"], t.loc["heldout"]
    detected = bool(paper["ci_low"] > 0 and held["ci_low"] > 0)
    detail = (
        f"Spearman rho of closeness to the good / bad centre with |judgment|: paper variant "
        f"{paper['spearman']:.3f}, held-out {held['spearman']:.3f} [{held['ci_low']:.3f}, "
        f"{held['ci_high']:.3f}]; detected when both intervals lie above 0"
    )
    return {
        "metric": "Spearman rho",
        "value": paper["spearman"],
        "ci_low": paper["ci_low"],
        "ci_high": paper["ci_high"],
        "p": paper["spearman_p"],
        "detected": detected,
        "detail": detail,
    }


def _structural(acts, records, layer, config, alpha, n_bootstrap) -> dict:
    from moralkit.diagnostics.structural import structural_indifference

    cfg = dataclasses.replace(config, layers=[layer], n_bootstrap=n_bootstrap)
    row = structural_indifference(acts, records, cfg)["verdict"].iloc[0]
    p = float(row["p_permutation"])
    detail = (
        f"ARI of {int(row['n_clusters'])} HDBSCAN clusters ({row['noise_ratio']:.0%} noise) with "
        f"good / neutral / bad; label-permutation p = {p:.3g}; row-order stability "
        f"{row['stability_min']:.2f}"
    )
    return {
        "metric": "ARI",
        "value": row["ari"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "p": p,
        "detected": p < alpha,
        "detail": detail,
    }


def _dimensional(acts, records, layer, config, alpha, n_bootstrap) -> dict:
    from moralkit.diagnostics.dimensional import dimensional_indifference

    cfg = dataclasses.replace(
        config, layers=[layer], probe_layers=None, control_layers=None, probes=("ridge_cv",),
        controls=(), n_bootstrap=n_bootstrap,
    )  # fmt: skip
    r2 = dimensional_indifference(acts, records, cfg)["r2"]
    row = r2[r2["dimension"] == "overall"].iloc[0]
    detail = (
        "out-of-fold R² of the ridge probe predicting the good and bad intensities "
        "(|judgment| / 2 on its pole); detected when its interval lies above 0"
    )
    return {
        "metric": "R²",
        "value": row["r2"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "p": np.nan,
        "detected": bool(row["ci_low"] > 0),
        "detail": detail,
    }


_CONTROLS: dict[str, Callable[..., dict]] = {
    "categorical": _categorical,
    "gradient": _gradient,
    "structural": _structural,
    "dimensional": _dimensional,
}


def positive_control(
    diagnostic: str,
    acts: Mapping[str, ActivationSet],
    records: MoralRecords,
    layers: Mapping[str, int],
    config: Any,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
) -> ControlResult:
    """Run ``diagnostic`` on the control ``records`` (:func:`moralkit.data.judged.valence_records`)
    for each model in ``layers`` ({model: the layer its moral verdict is based on}), with
    ``acts[model]`` the activations of the control texts and ``config`` the chapter's config
    of that diagnostic (its layers replaced by the verdict layer)."""
    if diagnostic not in _CONTROLS:
        raise ValueError(f"unknown diagnostic {diagnostic!r}; expected one of {tuple(_CONTROLS)}")
    missing = [m for m in layers if m not in acts]
    if missing:
        raise ValueError(f"no control activations for model(s) {missing}")
    # the control's data files and their sha256, for the provenance of the number
    files = "; ".join(f"{k} sha256 {v}" for k, v in (records.provenance.get("files") or {}).items())
    rows = []
    for model, layer in layers.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eight of the ten categories are empty by design
            found = _CONTROLS[diagnostic](
                acts[model], records, int(layer), config, alpha, n_bootstrap
            )
        found["detected"] = bool(found["detected"])
        rows.append(
            {"model": model, "diagnostic": diagnostic, "layer": int(layer), "name": CONTROL_NAME}
            | found
            | {"n_records": len(records), "source_files": files}
        )
    return ControlResult({"control": pd.DataFrame(rows)[list(CONTROL_COLUMNS)]})
