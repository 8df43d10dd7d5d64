"""Dimensional indifference: is the 10-d moral vector linearly readable?

(paper §2.5, §3.3; book: Methods › Dimensional, methods/dimensional.md)

Two probes per layer, both mapping pooled activations to the 10-d moral vector of
:data:`~moralkit.foundations.DIMENSIONS` (neutral records, all-zero targets, included):

* ``"paper"``: the paper's probe (paper §2.5, §3.3). Raw activations (not centred, not
  standardised) into ``nn.Linear(d, 10)`` with bias; a 70/10/20 train/val/test split; MSE,
  AdamW (lr 1e-3, weight decay 1e-4), batch 512, at most 100 epochs, ReduceLROnPlateau
  (factor 0.5, patience 5), early stopping on validation MSE (patience 10) restoring the best
  weights; scored by test R². The paper calls this number "adjusted R²"; it is the plain R²
  of :func:`sklearn.metrics.r2_score` (uniform average over the 10 outputs), which is what we
  report too. The paper's best value is 0.26. The weights restored are those of the best
  validation epoch (a deep copy), as the paper says; the official script's shallow
  ``state_dict().copy()`` in fact restores the *last* epoch's weights (a departure the
  chapter lists).
* ``"ridge_cv"``: the field's standard check. Standardised features and ridge regression with
  the penalty chosen by efficient leave-one-out CV (:class:`sklearn.linear_model.RidgeCV`)
  inside every fold of an outer K-fold; scored by out-of-fold R².

Controls: ``"shuffled"`` permutes the rows of the target matrix (expected R² <= ~0); it runs on
trained weights only. The untrained-twin control is the same call on activations of the
random-init twin; rows are then marked ``weights="untrained"`` (taken from
``acts.meta["random_init"]``).

A dimension whose evaluated targets are constant (e.g. no vice records in a ground truth) has
no defined R²: it gets NaN and a note, and "overall" averages the dimensions that are defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.dimensional_probes import (
    CONSTANT_TARGET_NOTE,
    CONTROLS,
    PROBE_FITTERS,
    PROBES,
    DimensionalConfig,
    ProbeFit,
    fit_paper_probe,
    fit_ridge_probe,
    paper_split,
    r2_by_dimension,
    r2_interval,
)
from moralkit.diagnostics.evidence import (
    VERDICT_TABLE_COLUMNS,
    Evidence,
    VerdictLayers,
    build_evidence,
    claim_value,
    model_evidence,
)
from moralkit.diagnostics.inputs import check_alignment, check_pooling, stored_layers
from moralkit.foundations import DIMENSIONS
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, ClaimValue

if TYPE_CHECKING:
    from moralkit.diagnostics.controls import ControlResult
    from moralkit.diagnostics.power import PowerResult

#: The paper's best probe R² over models and layers (paper §2.5, reported as "adjusted").
PAPER_BEST_R2 = 0.26
DEFAULT_CONFIG = DimensionalConfig()
__all__ = [
    "CONSTANT_TARGET_NOTE", "CONTROLS", "PAPER_BEST_R2", "PROBES", "DimensionalConfig",
    "DimensionalResult", "ProbeFit", "dimensional_indifference", "fit_paper_probe",
    "fit_ridge_probe", "paper_split", "probe_plan", "probed_layers", "r2_by_dimension",
    "r2_interval", "training_summary",
]  # fmt: skip


def probed_layers(acts: ActivationSet, config: DimensionalConfig = DEFAULT_CONFIG) -> list[int]:
    """The layers the probes read: ``config.layers`` (or every stored layer) narrowed by
    ``config.probe_layers`` (:meth:`LayerSpec.narrow` semantics)."""
    analysed = stored_layers(acts, config.layers)
    if config.probe_layers is None:
        return analysed
    wanted = config.probe_layers.resolve(acts.n_model_layers, "probe_layers")
    return [x for x in analysed if x in wanted] or analysed


def probe_plan(
    n: int, config: DimensionalConfig = DEFAULT_CONFIG, twins: Sequence[str] = ()
) -> pd.DataFrame:
    """One row describing a run: records, the paper probe's split, probed layers, twins."""
    train, val, test = paper_split(n, config)
    return pd.DataFrame(
        {
            "records": [n],
            "train / val / test (paper probe)": [f"{len(train)} / {len(val)} / {len(test)}"],
            "layers": [str(config.layers or "all stored")],
            "probe_layers": [str(config.probe_layers or "all analysed")],
            "untrained twins": [", ".join(twins) or "none"],
        }
    )


@dataclass
class DimensionalResult(VerdictLayers, AnalysisResult):
    """Linear-probe diagnostic for one or more models (paper §2.5).

    - ``r2`` (tidy): model, layer, relative_depth, weights (trained | untrained), probe,
      control (none | shuffled), dimension ("overall" or a DIMENSIONS name), r2, ``ci_low`` /
      ``ci_high`` (bootstrap over evaluated records; overall rows without control), n_eval,
      note.
    - ``training``: one row per fitted probe with epochs run and best validation MSE (paper
      probe) or the median CV-chosen penalty (ridge), for checking convergence and grid edges.

    ``best()``: per model, weights and probe, the layer with the highest overall R² (no
    control).
    """

    TABLES = ("r2", "training")
    BEST_TABLE = "r2"
    BEST_COLUMN = "r2"
    BEST_WHERE = {"control": "none", "dimension": "overall"}
    BEST_GROUP = ("model", "weights", "probe")

    def at_best_layer(self) -> pd.DataFrame:
        """Per-dimension R² rows (no control) at each model/weights/probe's best layer."""
        keys = ["model", "weights", "probe", "layer"]
        t = self.tables["r2"]
        t = t[(t["control"] == "none") & (t["dimension"] != "overall")]
        return t.merge(self.best()[keys], on=keys).reset_index(drop=True)

    def headline(self) -> pd.DataFrame:
        """Best-layer overall R² per model and probe (``r2_<probe>``; ``_untrained`` for the
        untrained twin), with its bootstrap interval."""
        best = self.best()
        suffix = np.where(best["weights"] == "untrained", "_untrained", "")
        out = pd.DataFrame(
            {
                "model": best["model"],
                "diagnostic": "dimensional",
                "metric": "r2_" + best["probe"].astype(str) + suffix,
                "value": best["r2"],
                "ci_low": best["ci_low"],
                "ci_high": best["ci_high"],
                "layer": best["layer"],
                "relative_depth": best["relative_depth"],
            }
        )
        return out[list(HEADLINE_COLUMNS)]

    def _trained_best(self) -> pd.DataFrame:
        """Per trained model, the best-layer row of the probe with the highest R²."""
        best = self.best()
        trained = best[best["weights"] == "trained"].dropna(subset=["r2"])
        if trained.empty:
            return trained
        return trained.loc[trained.groupby("model", sort=False)["r2"].idxmax()]

    def verdict_table(self) -> pd.DataFrame:
        """Per trained model, the claim's effect: its best R² over probes and layers."""
        t = self._trained_best()
        t = t.assign(metric="R² (" + t["probe"].astype(str) + " probe)").rename(
            columns={"r2": "value"}
        )
        return t[list(VERDICT_TABLE_COLUMNS)].reset_index(drop=True)

    def claim(
        self, power: PowerResult | None = None, control: ControlResult | None = None
    ) -> list[ClaimValue]:
        """``best_probe_r2``: the paper probe's best R² (the paper's 0.26 is its probe's);
        ``dimensional_indifference``: the best R² of any probe on a trained model, with its
        interval, the MDE of ``power`` and the positive ``control`` at that model and layer."""
        tops = self._trained_best()
        if tops.empty:
            return []
        best = self.best()
        trained = best[best["weights"] == "trained"]
        top = tops.loc[tops["r2"].idxmax()]
        per_probe = {
            str(k): round(float(v), 4) for k, v in trained.groupby("probe")["r2"].max().items()
        }
        shown = ", ".join(f"{k} {v:.3f}" for k, v in per_probe.items())
        out = []
        paper = trained[trained["probe"] == "paper"].dropna(subset=["r2"])
        if len(paper):
            p = paper.loc[paper["r2"].idxmax()]
            note = (
                f"best R² of the paper's probe: {p['model']} layer {int(p['layer'])} (test "
                f"split, n = {int(p['n_eval'])}); best per probe: {shown} (paper: {PAPER_BEST_R2})"
            )
            evidence = Evidence(ci_low=p["ci_low"], ci_high=p["ci_high"])
            out.append(
                claim_value(
                    "best_probe_r2",
                    round(float(p["r2"]), 4),
                    note,
                    {"per_probe": per_probe},
                    evidence,
                )
            )
        per_model = {}
        for row in tops.itertuples():
            ev = build_evidence(
                (row.ci_low, row.ci_high), str(row.model), "dimensional", power, control
            )
            per_model[str(row.model)] = {
                "layer": int(row.layer), "probe": str(row.probe), "r2": round(float(row.r2), 4),
                **model_evidence(ev),
            }  # fmt: skip
        evidence = build_evidence(
            (top["ci_low"], top["ci_high"]), str(top["model"]), "dimensional", power, control
        )
        note = (
            f"best R² of any probe over the models of this run: {top['probe']} probe, "
            f"{top['model']} layer {int(top['layer'])} [{top['ci_low']:.3f}, {top['ci_high']:.3f}]"
            f"; best per probe: {shown}"
        )
        extra = {
            "per_model": per_model,
            "per_probe": per_probe,
            "headline_model": str(top["model"]),
        }
        out.append(
            claim_value(
                "dimensional_indifference", round(float(top["r2"]), 4), note, extra, evidence
            )
        )
        return out


def training_summary(result: DimensionalResult) -> pd.DataFrame:
    """Per model and weights, how the paper's probe trained: layers probed, how many stopped
    early (before ``max_epochs``; a probe that never does is still improving) and the median
    best validation MSE."""
    t = result["training"]
    runs = t[(t["probe"] == "paper") & (t["control"] == "none")]
    max_epochs = result.config.max_epochs if result.config else DimensionalConfig().max_epochs
    return runs.groupby(["model", "weights"], sort=False).agg(
        layers=("layer", "size"),
        stopped_early=("epochs", lambda e: int((e < max_epochs).sum())),
        median_best_val_mse=("best_val_mse", "median"),
    )


def dimensional_indifference(
    acts: ActivationSet,
    records: MoralRecords,
    config: DimensionalConfig = DEFAULT_CONFIG,
    progress: bool = False,
) -> DimensionalResult:
    """Per-layer linear probes from activations to the 10-d moral vector (paper §2.5; book:
    Methods › Dimensional, methods/dimensional.md).

    The shuffled control permutes the target rows once (with ``config.seed``), reuses that
    permutation at every layer, and runs on trained weights only, at ``control_layers``.
    """
    check_alignment(acts, records)
    check_pooling(acts, config.pooling)
    layers = probed_layers(acts, config)
    control_layers = layers
    if config.control_layers is not None:
        wanted = config.control_layers.resolve(acts.n_model_layers, "control_layers")
        control_layers = [x for x in layers if x in wanted] or layers
    untrained = bool(acts.meta.get("random_init", False))
    Y = records.vectors
    targets = {"none": Y}
    if not untrained and "shuffled" in config.controls:
        targets["shuffled"] = Y[np.random.default_rng(config.seed).permutation(len(Y))]
    rows, training = [], []
    rng = np.random.default_rng(config.seed)
    for layer in tqdm(layers, desc=f"probing {acts.model_id}", disable=not progress):
        X = acts.get(layer, config.pooling)
        base = {
            "model": acts.model_id,
            "layer": layer,
            "relative_depth": acts.relative_depth(layer),
            "weights": "untrained" if untrained else "trained",
        }
        for probe in config.probes:
            for control, target in targets.items():
                if control != "none" and layer not in control_layers:
                    continue
                fit = PROBE_FITTERS[probe](X, target, config, seed=config.seed)
                key = {**base, "probe": probe, "control": control, "n_eval": len(fit.y_true)}
                n_boot = config.n_bootstrap if control == "none" else 0
                rows.extend(_r2_rows(key, fit, r2_interval(fit.y_true, fit.y_pred, n_boot, rng)))
                training.append(
                    {
                        **key,
                        "epochs": fit.epochs,
                        "best_val_mse": fit.best_val_mse,
                        "restored_val_mse": fit.restored_val_mse,
                        "ridge_alpha": fit.alpha,
                    }
                )
    tables = {"r2": pd.DataFrame(rows)[list(R2_COLUMNS)], "training": pd.DataFrame(training)}
    return DimensionalResult(tables, config)


R2_COLUMNS: tuple[str, ...] = (
    "model",
    "layer",
    "relative_depth",
    "weights",
    "probe",
    "control",
    "dimension",
    "r2",
    "ci_low",
    "ci_high",
    "n_eval",
    "note",
)


def _r2_rows(key: dict, fit: ProbeFit, interval: tuple[float, float]) -> list[dict]:
    """The overall (with its interval) and per-dimension R² rows of one fitted probe."""
    overall, per_dim = r2_by_dimension(fit.y_true, fit.y_pred)
    n_undefined = int(np.isnan(per_dim).sum())
    note = f"{n_undefined} dimension(s) undefined, averaged over the rest" if n_undefined else ""
    ci = {"ci_low": interval[0], "ci_high": interval[1]}
    rows = [{**key, "dimension": "overall", "r2": overall, **ci, "note": note}]
    for name, value in zip(DIMENSIONS, per_dim, strict=True):
        note = CONSTANT_TARGET_NOTE if np.isnan(value) else ""
        rows.append({**key, "dimension": name, "r2": float(value), "note": note})
    return rows
