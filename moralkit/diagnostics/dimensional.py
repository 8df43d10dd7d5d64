"""Dimensional indifference: is the 10-d moral vector linearly readable? (paper-methods §2.5)

Two probes per layer, both mapping pooled activations to the 10-d moral vector of
:data:`~moralkit.foundations.DIMENSIONS` (neutral records, all-zero targets, included):

* ``"paper"``: the paper's probe (paper-methods §2.5, §3.3). Raw activations (not centred, not
  standardised) into ``nn.Linear(d, 10)`` with bias; a 70/10/20 train/val/test split; MSE,
  AdamW (lr 1e-3, weight decay 1e-4), batch 512, at most 100 epochs, ReduceLROnPlateau
  (factor 0.5, patience 5), early stopping on validation MSE (patience 10) restoring the best
  weights; scored by test R². The paper calls this number "adjusted R²"; it is the plain R²
  of :func:`sklearn.metrics.r2_score` (uniform average over the 10 outputs), which is what we
  report too. The paper's best value is 0.26.
* ``"ridge_cv"``: the field's standard check. Standardised features and ridge regression with
  the penalty chosen by efficient leave-one-out CV (:class:`sklearn.linear_model.RidgeCV`)
  inside every fold of an outer K-fold; scored by out-of-fold R².

Controls: ``"shuffled"`` permutes the rows of the target matrix (expected R² <= ~0). The
untrained-model control is the same call on activations of the random-init twin; rows are then
marked ``weights="untrained"`` (taken from ``acts.meta["random_init"]``).

A dimension whose evaluated targets are constant (e.g. no vice records in a ground truth) has
no defined R²: it gets NaN and a note, and "overall" averages the dimensions that are defined.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

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
from moralkit.diagnostics.centring import check_alignment, resolve_layers
from moralkit.foundations import DIMENSIONS
from moralkit.records import MoralRecords
from moralkit.threads import blas_threads, torch_threads

PROBES: tuple[str, ...] = ("paper", "ridge_cv")
CONTROLS: tuple[str, ...] = ("shuffled",)
#: The paper's best probe R² over models and layers (paper-methods §2.5, reported as "adjusted").
PAPER_BEST_R2 = 0.26
CONSTANT_TARGET_NOTE = "constant target in evaluated rows: R² undefined"


@dataclass(frozen=True)
class ProbeConfig:
    """Settings of both probes (paper-methods §2.5).

    Paper probe: ``test_size`` and ``val_size`` are fractions of all records, split with
    ``split_seed`` (the paper's ``random_state=42``); optimiser and schedule as the paper.
    Ridge probe: ``ridge_alphas`` is the penalty grid, ``cv_folds`` the outer K-fold.
    ``torch_threads`` caps torch's CPU threads while the paper probe trains: its matrices are
    tiny, and on a busy 2-core machine two OpenMP threads were 10-20x slower than one.
    ``blas_threads`` caps the BLAS threads of the ridge fits (1 avoids the same slowdown on a
    shared small machine; use None, the library default, for wide models on many cores).
    """

    test_size: float = 0.2
    val_size: float = 0.1
    split_seed: int = 42
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 512
    max_epochs: int = 100
    lr_factor: float = 0.5
    lr_patience: int = 5
    early_stopping_patience: int = 10
    ridge_alphas: tuple[float, ...] = tuple(float(a) for a in np.logspace(-1, 6, 15))
    cv_folds: int = 5
    torch_threads: int | None = 1
    blas_threads: int | None = 1


def paper_split(
    n: int, config: ProbeConfig = ProbeConfig()
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test row indices, 70/10/20 as the paper (paper-methods §2.5).

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

    ``epochs`` / ``best_val_mse`` describe the paper probe, ``alpha`` the ridge penalty (median
    over folds).
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    epochs: int = 0
    best_val_mse: float = float("nan")
    alpha: float = float("nan")


def fit_paper_probe(
    X: np.ndarray, Y: np.ndarray, config: ProbeConfig = ProbeConfig(), seed: int = 0
) -> ProbeFit:
    """Train the paper's probe on raw activations and predict its test rows (paper-methods §2.5).

    Deterministic for a given ``seed`` (weight init and mini-batch order); torch's global RNG is
    left untouched.
    """
    train, val, test = paper_split(len(X), config)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    Yt = torch.as_tensor(np.asarray(Y, dtype=np.float32))
    with torch_threads(config.torch_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = torch.nn.Linear(Xt.shape[1], Yt.shape[1], bias=True)
        opt = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
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
            for batch in torch.randperm(len(train), generator=gen).split(config.batch_size):
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
    return ProbeFit(np.asarray(Y)[test], pred, epochs=epochs, best_val_mse=best_val)


def fit_ridge_probe(
    X: np.ndarray, Y: np.ndarray, config: ProbeConfig = ProbeConfig(), seed: int = 0
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
class DimensionalResult:
    """Linear-probe diagnostic for one or more models (paper-methods §2.5).

    ``table`` (tidy): model, layer, relative_depth, weights (trained | untrained), probe,
    control (none | shuffled), dimension ("overall" or a DIMENSIONS name), r2, n_eval, note.
    ``training``: one row per fitted probe with epochs run and best validation MSE (paper
    probe) or the median CV-chosen penalty (ridge), for checking convergence and grid edges.
    """

    table: pd.DataFrame
    training: pd.DataFrame
    config: ProbeConfig = field(default_factory=ProbeConfig)

    @property
    def best(self) -> pd.DataFrame:
        """Per model, weights and probe: the layer with the highest overall R² (no control)."""
        t = self.table
        sel = t[(t["control"] == "none") & (t["dimension"] == "overall")].dropna(subset=["r2"])
        if sel.empty:
            return sel.reset_index(drop=True)
        idx = sel.groupby(["model", "weights", "probe"])["r2"].idxmax()
        return sel.loc[idx].reset_index(drop=True)

    def at_best_layer(self) -> pd.DataFrame:
        """Per-dimension R² rows (no control) at each model/weights/probe's best layer."""
        keys = self.best[["model", "weights", "probe", "layer"]]
        t = self.table[(self.table["control"] == "none") & (self.table["dimension"] != "overall")]
        return t.merge(keys, on=["model", "weights", "probe", "layer"]).reset_index(drop=True)

    @classmethod
    def concat(cls, results: list[DimensionalResult]) -> DimensionalResult:
        """One result holding several models' (or weights') tables."""
        if not results:
            raise ValueError("need at least one DimensionalResult to concatenate")
        table = pd.concat([r.table for r in results], ignore_index=True)
        training = pd.concat([r.training for r in results], ignore_index=True)
        return cls(table, training, results[0].config)


def dimensional_indifference(
    acts: ActivationSet,
    records: MoralRecords,
    layers: list[int] | None = None,
    pooling: str = "mean",
    probes: tuple[str, ...] = PROBES,
    controls: tuple[str, ...] = CONTROLS,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    control_layers: list[int] | None = None,
    progress: bool = True,
) -> DimensionalResult:
    """Per-layer linear probes from activations to the 10-d moral vector (paper-methods §2.5).

    ``probes`` is any of ("paper", "ridge_cv"); ``controls`` any of ("shuffled",). The
    shuffled control permutes the target rows once (with ``seed``) and reuses that permutation
    at every layer; ``control_layers`` limits the controls to some of ``layers`` to save time
    (None = all). Returns a :class:`DimensionalResult`; its ``best`` gives each probe's best
    layer.
    """
    unknown = [p for p in probes if p not in _PROBE_FITTERS]
    if unknown:
        raise ValueError(f"unknown probes {unknown}; expected some of {PROBES}")
    bad = [c for c in controls if c not in CONTROLS]
    if bad:
        raise ValueError(f"unknown controls {bad}; expected some of {CONTROLS}")
    check_alignment(acts, records)
    layers = resolve_layers(acts, layers)
    if control_layers is None:
        control_layers = list(layers)
    stray = [x for x in control_layers if x not in layers]
    if stray:
        raise ValueError(f"control_layers {stray} are not among the probed layers {list(layers)}")
    weights = "untrained" if acts.meta.get("random_init", False) else "trained"
    Y = records.vectors
    rng = np.random.default_rng(seed)
    shuffled_Y = Y[rng.permutation(len(Y))]
    targets = {"none": Y, **({"shuffled": shuffled_Y} if "shuffled" in controls else {})}

    rows, training = [], []
    for layer in tqdm(layers, desc="probing layers", disable=not progress):
        X = acts.get(layer, pooling)
        base = {
            "model": acts.model_id,
            "layer": layer,
            "relative_depth": acts.relative_depth(layer),
            "weights": weights,
        }
        for probe in probes:
            for control, target in targets.items():
                if control != "none" and layer not in control_layers:
                    continue
                fit = _PROBE_FITTERS[probe](X, target, config, seed=seed)
                overall, per_dim = r2_by_dimension(fit.y_true, fit.y_pred)
                key = {**base, "probe": probe, "control": control, "n_eval": len(fit.y_true)}
                n_undefined = int(np.isnan(per_dim).sum())
                note = ""
                if n_undefined:
                    note = f"{n_undefined} dimension(s) undefined, averaged over the rest"
                rows.append({**key, "dimension": "overall", "r2": overall, "note": note})
                for name, value in zip(DIMENSIONS, per_dim, strict=True):
                    note = CONSTANT_TARGET_NOTE if np.isnan(value) else ""
                    rows.append({**key, "dimension": name, "r2": float(value), "note": note})
                training.append(
                    {
                        **key,
                        "epochs": fit.epochs,
                        "best_val_mse": fit.best_val_mse,
                        "ridge_alpha": fit.alpha,
                    }
                )
    columns = [
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
    ]
    return DimensionalResult(pd.DataFrame(rows)[columns], pd.DataFrame(training), config)
