"""Re-diagnosis: the four diagnostics before and after the surgery, and the surgery's effect
with paired bootstrap intervals (paper §5.4; book: Methods › SAE surgery, methods/sae.md).

Five conditions of the same records at one SAE layer, per training seed:

- ``original``: the model's activations;
- ``pretrained`` / ``finetuned``: their reconstruction by the pretrained SAE and by the
  fine-tuned SAE of each record's fold (cross-fitted: never fine-tuned on that record);
- ``pretrained codes`` / ``finetuned codes``: the SAE latent codes themselves.

The surgery's effect is **fine-tuned minus pretrained** on each diagnostic's primary metric,
reconstructions and codes alike: both conditions pay the same reconstruction loss, so the
difference is what fine-tuning changed. The comparison with the original activations is given
beside it. Every condition is evaluated on the same record draws
(:func:`moralkit.sae.effects.record_draws`), so each difference's interval is a paired bootstrap
(basic interval, centred on the estimate). Over seeds, the effect is the mean of the seeds'
effects and its interval the envelope of the seeds' intervals (lowest lower bound, highest upper
bound): a verdict then holds only if it holds for every seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from moralkit.diagnostics import DIAGNOSTICS
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult, ClaimValue, Gate, claim_settings
from moralkit.sae.data import crossfit_folds
from moralkit.sae.effects import EFFECT_METRICS, metric_draws, record_draws
from moralkit.sae.metrics import reconstruction_gate, reconstruction_report

__all__ = [
    "COMPARISONS",
    "CONDITIONS",
    "DIFFERENCE_COLUMNS",
    "RediagnosisConfig",
    "RediagnosisResult",
    "rediagnose",
]

CONDITIONS: tuple[str, ...] = (
    "original",
    "pretrained",
    "finetuned",
    "pretrained codes",
    "finetuned codes",
)
#: (baseline, condition): each effect is condition minus baseline; the first is the headline
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("pretrained", "finetuned"),
    ("pretrained codes", "finetuned codes"),
    ("original", "pretrained"),
    ("original", "finetuned"),
)
SURGERY_EFFECT = COMPARISONS[0]
#: columns of the ``differences`` table (rows of layers below the gate fill fewer)
DIFFERENCE_COLUMNS: tuple[str, ...] = (
    "ground_truth", "layer", "n_records", "seed", "comparison", "baseline", "condition",
    "diagnostic", "metric", "baseline_value", "value", "difference", "ci_low", "ci_high",
    "better", "verdict", "n_seeds", "seed_min", "seed_max", "detail",
)  # fmt: skip


@dataclass(frozen=True)
class RediagnosisConfig:
    """Which diagnostics (``which``), how many paired resamples of the records
    (``n_bootstrap``), the interval level, the pooling and the seed of the draws and of the
    gradient's prototype halves."""

    which: tuple[str, ...] = DIAGNOSTICS
    n_bootstrap: int = 1000
    level: float = 0.95
    pooling: str = "mean"
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [w for w in self.which if w not in EFFECT_METRICS]
        if unknown:
            raise ValueError(f"which={self.which}: unknown {unknown}; expected {DIAGNOSTICS}")
        if self.n_bootstrap < 2:
            raise ValueError(f"n_bootstrap={self.n_bootstrap}; need at least 2 resamples")


def _conditions(x: np.ndarray, surgery, folds: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for stage in ("pretrained", "finetuned"):
        out[stage] = surgery.apply(x, stage, "reconstruction", folds)
        out[f"{stage} codes"] = surgery.apply(x, stage, "codes", folds)
    return out


def _basic(estimate: float, draws: np.ndarray, level: float) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if len(draws) < 2 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    q_lo, q_hi = np.quantile(draws, [alpha, 1 - alpha])
    return float(2 * estimate - q_hi), float(2 * estimate - q_lo)


def _verdict(lo: float, hi: float, sign: int) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    if sign * lo > 0 and sign * hi > 0:
        return "gain"
    if sign * lo < 0 and sign * hi < 0:
        return "loss"
    return "no change"


def _seed_tables(label: dict, seed: int, measured: dict, level: float):
    values, diffs = [], []
    for condition, metrics in measured.items():
        for name, m in metrics.items():
            lo, hi = _basic(m.estimate, m.draws, level)
            values.append({**label, "seed": seed, "condition": condition, "diagnostic": name,
                           "metric": m.metric, "value": m.estimate, "ci_low": lo,
                           "ci_high": hi, **m.detail})  # fmt: skip
    for base, cond in COMPARISONS:
        for name in measured.get(cond, {}):
            a, b = measured[base][name], measured[cond][name]
            estimate, draws = b.estimate - a.estimate, b.draws - a.draws
            lo, hi = _basic(estimate, draws, level)
            sign = EFFECT_METRICS[name][1]
            diffs.append({**label, "seed": seed, "comparison": f"{cond} − {base}",
                          "baseline": base, "condition": cond, "diagnostic": name,
                          "metric": b.metric, "baseline_value": a.estimate, "value": b.estimate,
                          "difference": estimate, "ci_low": lo, "ci_high": hi,
                          "better": "higher" if sign > 0 else "lower",
                          "verdict": _verdict(lo, hi, sign)})  # fmt: skip
    return values, diffs


def _over_seeds(diffs: pd.DataFrame) -> pd.DataFrame:
    """One row per comparison and diagnostic over seeds: the mean effect, the envelope of the
    seeds' intervals, the seeds' smallest and largest effect, and the verdict of the envelope."""
    keys = ["ground_truth", "layer", "comparison", "baseline", "condition", "diagnostic",
            "metric", "better"]  # fmt: skip
    rows = []
    for key, g in diffs.groupby(keys, sort=False):
        sign = 1 if key[-1] == "higher" else -1
        lo, hi = float(g["ci_low"].min()), float(g["ci_high"].max())
        rows.append({**dict(zip(keys, key, strict=True)), "seed": "all",
                     "n_seeds": len(g), "baseline_value": g["baseline_value"].mean(),
                     "value": g["value"].mean(), "difference": g["difference"].mean(),
                     "seed_min": g["difference"].min(), "seed_max": g["difference"].max(),
                     "ci_low": lo, "ci_high": hi, "verdict": _verdict(lo, hi, sign)})  # fmt: skip
    return pd.DataFrame(rows)


def rediagnose(
    x: np.ndarray,
    records: MoralRecords,
    surgeries: Sequence[Any],
    config: RediagnosisConfig | None = None,
    ground_truth: str = "",
    crossfitted: bool = True,
) -> RediagnosisResult:
    """The five conditions of ``x`` (raw activations at one layer, rows = ``records``) under the
    seeds' SAEs ``surgeries`` (:class:`~moralkit.sae.surgery.LayerSurgery` of one layer):
    each diagnostic's metric with paired bootstrap draws, the effects, and how each stage
    reconstructs these records. ``crossfitted``: the records are the labelled records the
    surgery was cross-fitted on (each scored by its own fold's SAE); otherwise (a control
    ground truth, never fine-tuned on) the records are dealt to the folds' SAEs by the same
    stratified rule."""
    config = config or RediagnosisConfig()
    draws = record_draws(records, config.n_bootstrap, config.seed)
    layer = surgeries[0].layer
    label = {"ground_truth": ground_truth, "layer": layer, "n_records": len(records)}
    measure = lambda v: metric_draws(v, records, draws, config.which, config.seed)  # noqa: E731
    original = measure(x)
    values, diffs, recon = [], [], []
    for s in surgeries:
        folds = s.folds if crossfitted else crossfit_folds(records, len(s.finetuned), s.seed)
        conditions = _conditions(x, s, folds)
        measured = {"original": original} | {k: measure(v) for k, v in conditions.items()}
        v, d = _seed_tables(label, s.seed, measured, config.level)
        values += v
        diffs += d
        for stage in ("pretrained", "finetuned"):
            rep = reconstruction_report(x, conditions[stage], conditions[f"{stage} codes"])
            recon.append({**label, "seed": s.seed, "stage": stage, **rep,
                          "dead_fraction": rep["dead"] / s.pretrained.cfg.d_sae})  # fmt: skip
    diffs = pd.DataFrame(diffs)
    both = pd.concat([diffs, _over_seeds(diffs)], ignore_index=True)
    tables = {
        "values": pd.DataFrame(values),
        "differences": both.reindex(columns=list(DIFFERENCE_COLUMNS)),
        "reconstruction": pd.DataFrame(recon),
    }
    return RediagnosisResult(tables, config)


class RediagnosisResult(AnalysisResult):
    """``values`` (one row per ground truth x layer x seed x condition x diagnostic: the
    metric and its bootstrap interval), ``differences`` (the effects per seed and over seeds,
    ``seed = "all"``) and ``reconstruction`` (each stage's reconstruction of these records).
    ``best()`` is :meth:`verdicts`."""

    TABLES: ClassVar[tuple[str, ...]] = ("values", "differences", "reconstruction")
    #: the claim layer and its gates, set by the recipe from the surgery (not tables)
    claim_gates: Sequence[Gate] = ()
    claim_layer: int | None = None

    def best(self) -> pd.DataFrame:
        return self.verdicts()

    def verdicts(self, comparison: tuple[str, str] = SURGERY_EFFECT) -> pd.DataFrame:
        """The over-seeds rows of one comparison (default: fine-tuned minus pretrained)."""
        d = self.tables["differences"].reindex(columns=list(DIFFERENCE_COLUMNS))
        keep = (d["seed"].astype(str) == "all") & (d["condition"] == comparison[1])
        return d[keep & (d["baseline"] == comparison[0])].reset_index(drop=True)

    def claim(self) -> list[ClaimValue]:
        """``sae_typicality_up`` and ``sae_opposing_similarity_down`` on the fine-tuning ground
        truth (the first in the table): fine-tuned minus pretrained reconstruction, oriented so
        that larger is better, mean over seeds with the envelope of the seeds' paired intervals,
        gated on the SAEs' reconstruction and the number of resamples."""
        v = self.verdicts()
        if len(v):
            v = v[v["ground_truth"] == v["ground_truth"].iloc[0]]
            if self.claim_layer is not None:
                v = v[v["layer"] == self.claim_layer]
        out = []
        for claim_id, diagnostic in (
            ("sae_typicality_up", "gradient"),
            ("sae_opposing_similarity_down", "categorical"),
        ):
            row = v[v["diagnostic"] == diagnostic] if len(v) else v
            if not row.empty:
                out.append(self._effect(claim_id, row.iloc[0]))
            elif self.claim_gates and not all(g.passed for g in self.claim_gates):
                note = "below the gate: no SAE layer reconstructs well enough to re-diagnose"
                gates = self.gates(claim_settings(claim_id))
                out.append(ClaimValue(claim_id, None, note, {}, gates=gates))
        return out

    def _per_seed(self, r: pd.Series) -> dict[str, float]:
        d = self.tables["differences"]
        mine = d[(d["seed"].astype(str) != "all") & (d["ground_truth"] == r["ground_truth"])
                 & (d["layer"] == r["layer"]) & (d["comparison"] == r["comparison"])
                 & (d["diagnostic"] == r["diagnostic"])]  # fmt: skip
        return {str(x.seed): round(float(x.difference), 4) for x in mine.itertuples()}

    def _effect(self, claim_id: str, r: pd.Series) -> ClaimValue:
        sign = 1 if r["better"] == "higher" else -1
        low, high = sorted((sign * r["ci_low"], sign * r["ci_high"]))
        interval = {"ci_low": low, "ci_high": high} if np.isfinite([low, high]).all() else {}
        per_seed = self._per_seed(r)
        note = (
            f"{r['metric']} at layer {int(r['layer'])}, fine-tuned minus pretrained "
            f"reconstruction: {r['baseline_value']:.3f} → {r['value']:.3f} (difference "
            f"{r['difference']:+.3f}, mean of {int(r['n_seeds'])} seeds {per_seed}; envelope "
            f"of the seeds' paired 95% intervals [{r['ci_low']:.3f}, {r['ci_high']:.3f}]; "
            f"{r['ground_truth']}, {int(self.tables['values']['n_records'].iloc[0])} records, "
            "each scored by an SAE never fine-tuned on it)"
        )
        extra = {"difference": float(r["difference"]), "metric": r["metric"],
                 "layer": int(r["layer"]), "per_seed": per_seed,
                 "seed_min": float(min(sign * r["seed_min"], sign * r["seed_max"])),
                 "seed_max": float(max(sign * r["seed_min"], sign * r["seed_max"])),
                 "verdict": r["verdict"]}  # fmt: skip
        return ClaimValue(
            claim_id, round(float(sign * r["difference"]), 4), note, extra,
            gates=self.gates(claim_settings(claim_id)), **interval,
        )  # fmt: skip

    def gates(self, settings: Mapping[str, Any]) -> list[Gate]:
        """The reconstruction gate of the claim layer (set by the recipe; when absent, every
        recorded stage and seed on the fine-tuning ground truth) and ``enough_resamples``."""
        gates = list(self.claim_gates)
        if not any(g.name == "sae_reconstruction" for g in gates) and len(
            self.tables["reconstruction"]
        ):
            rec = self.tables["reconstruction"]
            rec = rec[rec["ground_truth"] == rec["ground_truth"].iloc[0]]
            rows = [{**r._asdict(), "label": f"layer {r.layer} seed {r.seed} {r.stage}"}
                    for r in rec.itertuples(index=False)]  # fmt: skip
            gates.append(reconstruction_gate(rows, settings))
        n_boot = self.config.n_bootstrap if self.config else 0
        need = int(settings["min_resamples"])
        gates.append(Gate("enough_resamples", n_boot >= need, f"{n_boot} resamples (need {need})"))
        return gates

    @classmethod
    def stack(cls, results: Sequence[RediagnosisResult]) -> RediagnosisResult:
        """Results on several ground truths or layers in one (the first: the claim's)."""
        out = cls.concat(results)
        out.claim_gates = results[0].claim_gates if results else ()
        out.claim_layer = results[0].claim_layer if results else None
        return out
