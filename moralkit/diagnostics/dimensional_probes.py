"""The dimensional diagnostic's two probes, their settings and their R² (paper §2.5, §3.3).

(book: Methods › Dimensional, methods/dimensional.md.) :class:`DimensionalConfig` holds the
settings of both probes; :func:`fit_paper_probe` is the paper's probe (raw activations into
``nn.Linear(d, 10)``, a 70/10/20 split, AdamW with early stopping), :func:`fit_ridge_probe` the
cross-validated ridge check; :func:`r2_by_dimension` scores predictions and
:func:`r2_interval` gives the bootstrap interval of the overall R² over the evaluated records
(the fitted probe held fixed). :mod:`moralkit.diagnostics.dimensional` runs them per layer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from moralkit.diagnostics.inputs import DiagnosticConfig
from moralkit.diagnostics.resampling import bootstrap_counts, percentile_interval
from moralkit.layers import LayerSpec
from moralkit.threads import blas_threads, torch_threads

PROBES: tuple[str, ...] = ("paper", "ridge_cv")
CONTROLS: tuple[str, ...] = ("shuffled",)
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
    ``n_bootstrap`` resamples of the evaluated records give each unshuffled probe's overall
    R² interval (the fitted probe held fixed; 0: none).
    ``seed`` fixes probe initialisation, batch order, the CV folds, the shuffled control and
    the bootstrap.
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
    n_bootstrap: int = 1000

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


def r2_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_bootstrap: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the overall R² (:func:`r2_by_dimension`) over the
    evaluated records, the predictions held fixed (NaN with fewer than 2 resamples)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    resid2 = (y_true - np.asarray(y_pred, dtype=np.float64)) ** 2
    n = len(y_true)
    defined = np.ptp(y_true, axis=0) > 0
    if n_bootstrap < 2 or n < 2 or not defined.any():
        return float("nan"), float("nan")
    out = []
    for _, w in bootstrap_counts(n, n_bootstrap, rng):
        mean = w @ y_true / n
        sst = w @ y_true**2 - n * mean**2
        with np.errstate(invalid="ignore", divide="ignore"):
            per_dim = 1.0 - (w @ resid2) / np.where(sst > 1e-12, sst, np.nan)
        out.append(np.nanmean(np.where(defined, per_dim, np.nan), axis=1))
    return percentile_interval(np.concatenate(out), level)


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


PROBE_FITTERS = {"paper": fit_paper_probe, "ridge_cv": fit_ridge_probe}
