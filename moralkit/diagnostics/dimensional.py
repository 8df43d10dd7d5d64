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

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.inputs import (
    DiagnosticConfig,
    check_alignment,
    check_pooling,
    stored_layers,
)
from moralkit.foundations import DIMENSIONS
from moralkit.layers import LayerSpec
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, ClaimValue
from moralkit.threads import blas_threads, torch_threads

PROBES: tuple[str, ...] = ("paper", "ridge_cv")
CONTROLS: tuple[str, ...] = ("shuffled",)
#: The paper's best probe R² over models and layers (paper §2.5, reported as "adjusted").
PAPER_BEST_R2 = 0.26
CONSTANT_TARGET_NOTE = "constant target in evaluated rows: R² undefined"


@dataclass(frozen=True)
class DimensionalConfig(DiagnosticConfig):
    """Settings of both probes (paper §2.5; book: Methods › Dimensional).

    ``probes``: any of ("paper", "ridge_cv"); ``controls``: any of ("shuffled",).
    ``probe_layers`` narrows the analysed layers (LayerSpec grammar; the layers both select,
    or all analysed layers when they share none); ``control_layers`` narrows the probed layers
    for the controls (None: every probed layer).
    Paper probe: ``test_size`` and ``val_size`` are fractions of all records, split with
    ``split_seed`` (the paper's ``random_state=42``); optimiser and schedule as the paper
    (``learning_rate``, ``probe_batch_size``, ``max_epochs`` ...). Ridge probe:
    ``ridge_alphas`` is the penalty grid, ``cv_folds`` the outer K-fold.
    ``torch_threads`` caps torch's CPU threads while the paper probe trains: its matrices are
    tiny, and on a busy 2-core machine two OpenMP threads were 10-20x slower than one.
    ``blas_threads`` caps the BLAS threads of the ridge fits (1 avoids the same slowdown on a
    shared small machine; use None, the library default, for wide models on many cores).
    ``seed`` fixes probe initialisation, batch order, the CV folds and the shuffled control.
    """

    probes: Any = PROBES
    controls: Any = CONTROLS
    probe_layers: Any = None
    control_layers: Any = None
    test_size: float = 0.2
    val_size: float = 0.1
    split_seed: int = 42
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    probe_batch_size: int = 512
    max_epochs: int = 100
    lr_factor: float = 0.5
    lr_patience: int = 5
    early_stopping_patience: int = 10
    ridge_alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 6, 15))
    cv_folds: int = 5
    torch_threads: int | None = 1
    blas_threads: int | None = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, allowed in (("probes", PROBES), ("controls", CONTROLS)):
            value = getattr(self, name)
            value = (value,) if isinstance(value, str) else tuple(value)
            unknown = [v for v in value if v not in allowed]
            if unknown:
                raise ValueError(f"{name}: unknown {unknown}; expected some of {allowed}")
            object.__setattr__(self, name, value)
        for name in ("probe_layers", "control_layers"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, LayerSpec.parse(getattr(self, name), name))


def probed_layers(
    acts: ActivationSet, config: DimensionalConfig = DimensionalConfig()
) -> list[int]:
    """The layers the probes read: ``config.layers`` (or every stored layer) narrowed by
    ``config.probe_layers`` (:meth:`LayerSpec.narrow` semantics)."""
    analysed = stored_layers(acts, config.layers)
    if config.probe_layers is None:
        return analysed
    wanted = config.probe_layers.resolve(acts.n_model_layers, "probe_layers")
    return [x for x in analysed if x in wanted] or analysed


def paper_split(
    n: int, config: DimensionalConfig = DimensionalConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test row indices, 70/10/20 as the paper (paper §2.5).

    Two calls of ``train_test_split(random_state=split_seed)``: first the test fraction off all
    rows, then ``val_size / (1 - test_size)`` of the rest (10% of the total) as validation.
    """
    if not 0 < config.test_size < 1 or not 0 < config.val_size < 1 - config.test_size:
        raise ValueError(f"bad split fractions test={config.test_size}, val={config.val_size}")
    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=config.test_size, random_state=config.split_seed)
    val_of_rest = config.val_size / (1 - config.test_size)
    train, val = train_test_split(rest, test_size=val_of_rest, random_state=config.split_seed)
    return train, val, test


def probe_plan(
    n: int, config: DimensionalConfig = DimensionalConfig(), twins: Sequence[str] = ()
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


def r2_by_dimension(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, np.ndarray]:
    """Overall and per-dimension R² (sklearn ``r2_score``), NaN for constant target columns.

    Overall is the uniform average over the defined dimensions, i.e. sklearn's
    ``r2_score(y_true, y_pred)`` whenever every column varies.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    constant = np.ptp(y_true, axis=0) == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        per_dim = r2_score(y_true, y_pred, multioutput="raw_values", force_finite=False)
    per_dim = np.where(constant, np.nan, per_dim)
    overall = float(np.mean(per_dim[~constant])) if (~constant).any() else float("nan")
    return overall, per_dim


@dataclass
class ProbeFit:
    """One fitted probe's predictions on its evaluation rows, plus training facts.

    ``epochs`` / ``best_val_mse`` describe the paper probe and ``restored_val_mse`` the
    validation error of the weights it kept (equal to ``best_val_mse`` when the best epoch
    is restored); ``alpha`` is the ridge penalty (median over folds).
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    epochs: int = 0
    best_val_mse: float = float("nan")
    restored_val_mse: float = float("nan")
    alpha: float = float("nan")


def fit_paper_probe(
    X: np.ndarray, Y: np.ndarray, config: DimensionalConfig = DimensionalConfig(), seed: int = 0
) -> ProbeFit:
    """Train the paper's probe on raw activations and predict its test rows (paper §2.5).

    Early stopping restores the best validation epoch's weights (a deep copy, as the paper
    describes; the official script's shallow copy restores the last epoch). Deterministic
    for a given ``seed`` (weight init and mini-batch order); torch's global RNG is left
    untouched.
    """
    train, val, test = paper_split(len(X), config)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    Yt = torch.as_tensor(np.asarray(Y, dtype=np.float32))
    with torch_threads(config.torch_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = torch.nn.Linear(Xt.shape[1], Yt.shape[1], bias=True)
        opt = torch.optim.AdamW(
            probe.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=config.lr_factor, patience=config.lr_patience
        )
        gen = torch.Generator().manual_seed(seed)
        x_tr, y_tr = Xt[train], Yt[train]
        x_va, y_va = Xt[val], Yt[val]
        best_val, best_state, since_best, epochs = float("inf"), None, 0, 0
        for _ in range(config.max_epochs):
            epochs += 1
            probe.train()
            for batch in torch.randperm(len(train), generator=gen).split(config.probe_batch_size):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(probe(x_tr[batch]), y_tr[batch])
                loss.backward()
                opt.step()
            probe.eval()
            with torch.no_grad():
                val_mse = float(torch.nn.functional.mse_loss(probe(x_va), y_va))
            sched.step(val_mse)
            if val_mse < best_val:
                best_val, best_state, since_best = val_mse, copy.deepcopy(probe.state_dict()), 0
            else:
                since_best += 1
                if since_best >= config.early_stopping_patience:
                    break
        if best_state is not None:
            probe.load_state_dict(best_state)
        with torch.no_grad():
            pred = probe(Xt[test]).numpy()
            restored = float(torch.nn.functional.mse_loss(probe(x_va), y_va))
    return ProbeFit(np.asarray(Y)[test], pred, epochs, best_val, restored_val_mse=restored)


def fit_ridge_probe(
    X: np.ndarray, Y: np.ndarray, config: DimensionalConfig = DimensionalConfig(), seed: int = 0
) -> ProbeFit:
    """Standardised ridge with CV-chosen penalty; out-of-fold predictions for every row.

    The outer split is ``KFold(cv_folds, shuffle=True, random_state=seed)``; inside each fold
    :class:`~sklearn.linear_model.RidgeCV` picks one penalty for all ten outputs by efficient
    leave-one-out CV, so no test row ever informs its own penalty.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    pred = np.empty_like(Y)
    alphas = []
    with blas_threads(config.blas_threads):
        for train, test in KFold(config.cv_folds, shuffle=True, random_state=seed).split(X):
            # "svd" LOO: one decomposition per fold, then every penalty is cheap.
            ridge = RidgeCV(alphas=config.ridge_alphas, gcv_mode="svd")
            pipe = make_pipeline(StandardScaler(), ridge)
            pipe.fit(X[train], Y[train])
            pred[test] = pipe.predict(X[test])
            alphas.append(pipe[-1].alpha_)
    return ProbeFit(Y, pred, alpha=float(np.median(alphas)))


_PROBE_FITTERS = {"paper": fit_paper_probe, "ridge_cv": fit_ridge_probe}


@dataclass
class DimensionalResult(AnalysisResult):
    """Linear-probe diagnostic for one or more models (paper §2.5).

    - ``r2`` (tidy): model, layer, relative_depth, weights (trained | untrained), probe,
      control (none | shuffled), dimension ("overall" or a DIMENSIONS name), r2, n_eval, note.
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
        untrained twin)."""
        best = self.best()
        suffix = np.where(best["weights"] == "untrained", "_untrained", "")
        out = pd.DataFrame(
            {
                "model": best["model"],
                "diagnostic": "dimensional",
                "metric": "r2_" + best["probe"].astype(str) + suffix,
                "value": best["r2"],
                "ci_low": np.nan,
                "ci_high": np.nan,
                "layer": best["layer"],
                "relative_depth": best["relative_depth"],
            }
        )
        return out[list(HEADLINE_COLUMNS)]

    def claim(self) -> list[ClaimValue]:
        """``best_probe_r2`` and ``dimensional_indifference``: the best R² of any probe on a
        trained model, with each probe's best in the note."""
        best = self.best()
        trained = best[best["weights"] == "trained"]
        if trained.empty:
            return []
        top = trained.loc[trained["r2"].idxmax()]
        by_probe = trained.groupby("probe")["r2"].max()
        value = round(float(top["r2"]), 4)
        shown = ", ".join(f"{k} {v:.3f}" for k, v in by_probe.items())
        note = (
            f"best R² over models, layers and probes: {top['probe']} probe, {top['model']} "
            f"layer {int(top['layer'])}; best per probe: {shown} (paper: {PAPER_BEST_R2})"
        )
        per_probe = {str(k): round(float(v), 4) for k, v in by_probe.items()}
        models = ", ".join(dict.fromkeys(trained["model"].astype(str)))
        return [
            ClaimValue("best_probe_r2", value, note, {"per_probe": per_probe}),
            ClaimValue(
                "dimensional_indifference",
                value,
                f"best R² of any probe on the models of this run ({models})",
            ),
        ]


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
    config: DimensionalConfig = DimensionalConfig(),
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
                fit = _PROBE_FITTERS[probe](X, target, config, seed=config.seed)
                key = {**base, "probe": probe, "control": control, "n_eval": len(fit.y_true)}
                rows.extend(_r2_rows(key, fit))
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
    "n_eval",
    "note",
)


def _r2_rows(key: dict, fit: ProbeFit) -> list[dict]:
    """The overall and per-dimension R² rows of one fitted probe."""
    overall, per_dim = r2_by_dimension(fit.y_true, fit.y_pred)
    n_undefined = int(np.isnan(per_dim).sum())
    note = f"{n_undefined} dimension(s) undefined, averaged over the rest" if n_undefined else ""
    rows = [{**key, "dimension": "overall", "r2": overall, "note": note}]
    for name, value in zip(DIMENSIONS, per_dim, strict=True):
        note = CONSTANT_TARGET_NOTE if np.isnan(value) else ""
        rows.append({**key, "dimension": name, "r2": float(value), "note": note})
    return rows
