"""Planted effects of the four diagnostics, on the run's own activations at one layer.

(book: Methods › Power, controls and stability, methods/power.md.) Each design first removes
whatever structure the data hold (labels or rows shuffled, so every draw starts from "no
effect" with the run's own noise: its norms, anisotropy and massive dimensions), then plants
an effect of strength ``s`` along random unit directions ``u`` drawn afresh per draw, then
measures the claim's effect with the diagnostic's own computation:

- **categorical**: prototype labels shuffled; ``+s u_f`` added to virtue and ``-s u_f`` to
  vice prototypes of foundation ``f`` (re-centred); effect = separation (null centre minus
  mean virtue–vice cosine), detected by the one-sided permutation test;
- **gradient**: rows shuffled within each foundation; ``s t_i u_c`` added to every polar
  record (``t_i`` its typicality, ``u_c`` its category's direction, so prototypes move most
  and define the new centre; re-centred); effect = overall Spearman rho of the paper variant,
  detected above the calibrated no-effect threshold (the paper variant is biased upward by
  its circularity, so a test against 0 would not hold its level);
- **structural**: rows shuffled; ``s v_g`` added to every record of MFT15 group ``g``; PCA and
  HDBSCAN as the diagnostic; effect = ARI vs MFT15 on non-noise points, detected by a
  label-permutation test;
- **dimensional**: target rows shuffled; a linear image ``s (Z_y W) * sd(X)`` of the
  standardised moral vector added to the activations (``W`` random, each column's planted part
  in units of that column's spread); effect = out-of-fold R² of the ridge probe, with its
  penalty fixed at the one cross-validation chose on the run's data at that layer;
  detected above the calibrated no-effect threshold.

Strengths are in units of a typical noise scale (``PlantedDesign.unit``): the RMS norm of a
centred record (gradient, structural), of a prototype centre's noise (categorical) or 1 (the
dimensional design plants in units of each column's standard deviation).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import linalg, stats
from sklearn.model_selection import KFold

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics import DIAGNOSTICS
from moralkit.diagnostics.categorical import N_CATEGORIES, OPPOSED_PAIRS, CategoricalConfig
from moralkit.diagnostics.centring import (
    category_codes,
    centre_activations,
    prototype_mask,
)
from moralkit.diagnostics.cluster_agreement import ari_permutation_test
from moralkit.diagnostics.clustering import StructuralConfig, cluster_layer
from moralkit.diagnostics.dimensional import DimensionalConfig, fit_ridge_probe, r2_by_dimension
from moralkit.diagnostics.gradient import GradientConfig, pair_cosines, pair_layout
from moralkit.diagnostics.inputs import check_alignment
from moralkit.diagnostics.power import PlantedDesign, PowerConfig, PowerResult, power_analysis
from moralkit.diagnostics.resampling import lower_tail_p, permutation_weights
from moralkit.diagnostics.structural import label_sets
from moralkit.foundations import FOUNDATIONS
from moralkit.records import MoralRecords


def unit_rows(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    """``k`` independent random unit vectors in ``d`` dimensions (rows)."""
    v = rng.standard_normal((k, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _rms_norm(X: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.einsum("nd,nd->n", X, X))))


def _layer(acts: ActivationSet, records: MoralRecords, layer: int, pooling: str) -> np.ndarray:
    check_alignment(acts, records)
    return acts.get(layer, pooling).astype(np.float64)


def planted_pair_cosines(
    base: np.ndarray, coef: np.ndarray, proj: np.ndarray, UU: np.ndarray, strength: float
) -> np.ndarray:
    """Virtue–vice cosines of centres ``base + strength * coef @ U`` from inner products only.

    ``base`` (..., 10, d) centres without the planted part, ``coef`` (..., 10, k) their planted
    coefficients, ``proj = base @ U.T`` and ``UU = U @ U.T``; equals
    :func:`~moralkit.diagnostics.categorical.opposed_cosines` of the planted centres at a
    fraction of the cost (no (..., 10, d) array is formed).
    """
    a, b = [x for x, _ in OPPOSED_PAIRS], [y for _, y in OPPOSED_PAIRS]

    def dot(i: list[int], j: list[int]) -> np.ndarray:
        plain = np.einsum("...kd,...kd->...k", base[..., i, :], base[..., j, :])
        cross = np.einsum("...kc,...kc->...k", coef[..., i, :], proj[..., j, :])
        cross += np.einsum("...kc,...kc->...k", proj[..., i, :], coef[..., j, :])
        quad = np.einsum("...kc,ce,...ke->...k", coef[..., i, :], UU, coef[..., j, :])
        return plain + strength * cross + strength**2 * quad

    with np.errstate(invalid="ignore", divide="ignore"):
        den = np.sqrt(dot(a, a) * dot(b, b))
        return np.where(den > 0, dot(a, b) / den, np.nan)


def categorical_design(
    acts: ActivationSet, records: MoralRecords, layer: int, config: CategoricalConfig
) -> PlantedDesign:
    """Planted opposition of virtue and vice centres (see the module docstring)."""
    Xc = centre_activations(_layer(acts, records, layer, config.pooling), config.standardise)
    proto = prototype_mask(records)
    codes = category_codes(records)[proto]
    P = Xc[proto]
    counts = np.bincount(codes, minlength=N_CATEGORIES)
    perm_w = permutation_weights(codes, config.n_permutations, np.random.default_rng(config.seed))
    n_perm, n_all = config.n_permutations, len(records)
    null_base = np.asarray(perm_w @ P).reshape(n_perm, N_CATEGORIES, -1)
    share = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)

    def draw(strength: float, rng: np.random.Generator) -> tuple[float, float | None]:
        labels = rng.permutation(codes)
        sign = np.zeros((codes.size, len(OPPOSED_PAIRS)))
        for k, (a, b) in enumerate(OPPOSED_PAIRS):
            sign[labels == a, k], sign[labels == b, k] = 1.0, -1.0
        sign -= sign.sum(axis=0) / n_all  # the diagnostic re-centres over all records
        U = unit_rows(rng, len(OPPOSED_PAIRS), P.shape[1])
        average = np.zeros((N_CATEGORIES, codes.size))
        average[labels, np.arange(codes.size)] = share[labels]
        centres = average @ P
        null_coef = np.asarray(perm_w @ sign).reshape(n_perm, N_CATEGORIES, -1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # empty categories: NaN
            observed = np.nanmean(
                planted_pair_cosines(centres, average @ sign, centres @ U.T, U @ U.T, strength)
            )
            null_vv = np.nanmean(
                planted_pair_cosines(null_base, null_coef, null_base @ U.T, U @ U.T, strength),
                axis=1,
            )
        return float(np.nanmean(null_vv) - observed), float(lower_tail_p(null_vv, observed))

    sizes = counts[counts > 0]
    unit = _rms_norm(P) / np.sqrt(np.median(sizes)) if sizes.size else 1.0
    return PlantedDesign(
        "categorical", acts.model_id, layer, "separation (cosine)",
        "opposite offsets (+s/-s along a random direction per foundation) on label-shuffled "
        "virtue and vice prototypes",
        f"one-sided permutation test ({config.n_permutations} label shuffles)",
        float(unit), True, draw,
    )  # fmt: skip


def gradient_design(
    acts: ActivationSet, records: MoralRecords, layer: int, config: GradientConfig
) -> PlantedDesign:
    """Planted typicality gradient toward each category's direction (paper variant)."""
    Xc = centre_activations(_layer(acts, records, layer, config.pooling), config.standardise)
    table = records.table
    foundation = table["foundation"].map({f: k for k, f in enumerate(FOUNDATIONS)}).to_numpy()
    groups = [np.flatnonzero(foundation == k) for k in range(len(FOUNDATIONS))]
    codes = category_codes(records)
    polar = np.flatnonzero(codes >= 0)
    typical = np.zeros((len(records), N_CATEGORIES))
    typical[polar, codes[polar]] = table["typicality"].to_numpy()[polar]
    layout = pair_layout(records)
    # the prototype means category_centres takes, as one (10, n) matrix
    proto = prototype_mask(records)
    counts = np.bincount(codes[proto], minlength=N_CATEGORIES)
    average = np.zeros((N_CATEGORIES, len(records)))
    average[codes[proto], np.flatnonzero(proto)] = 1.0 / counts[codes[proto]]
    average[counts == 0] = np.nan

    def draw(strength: float, rng: np.random.Generator) -> tuple[float, float | None]:
        order = np.arange(len(records))
        for g in groups:
            order[g] = rng.permutation(g)
        X = Xc[order] + strength * typical @ unit_rows(rng, N_CATEGORIES, Xc.shape[1])
        X -= X.mean(axis=0)
        x = pair_cosines(X, average @ X, layout)
        keep = np.isfinite(x)
        return float(stats.spearmanr(x[keep], layout.y[keep])[0]), None

    return PlantedDesign(
        "gradient", acts.model_id, layer, "Spearman rho",
        "a typicality-proportional offset (s x typicality along a random direction per "
        "category) on records shuffled within their foundation",
        "rho above the 95th percentile of no-effect draws", _rms_norm(Xc), False, draw,
        strengths=(0.0, 0.03, 0.06, 0.12, 0.25, 0.5),
    )  # fmt: skip


def structural_design(
    acts: ActivationSet,
    records: MoralRecords,
    layer: int,
    config: StructuralConfig,
    n_label_permutations: int = 99,
) -> PlantedDesign:
    """Planted MFT15 group offsets, clustered as the diagnostic clusters."""
    X = _layer(acts, records, layer, config.pooling)
    truth = np.unique(label_sets(records)["MFT15"], return_inverse=True)[1]
    n_groups = int(truth.max()) + 1

    def draw(strength: float, rng: np.random.Generator) -> tuple[float, float | None]:
        shuffled = X[rng.permutation(X.shape[0])]
        planted = shuffled + strength * unit_rows(rng, n_groups, X.shape[1])[truth]
        clusters = cluster_layer(planted, config).labels
        keep = clusters >= 0
        ari, p = ari_permutation_test(truth[keep], clusters[keep], n_label_permutations, rng)
        return ari, p

    return PlantedDesign(
        "structural", acts.model_id, layer, "ARI vs MFT15",
        "offsets (s along a random direction per MFT15 group) on row-shuffled records",
        f"label-permutation test of the non-noise ARI ({n_label_permutations} shuffles)",
        _rms_norm(centre_activations(X)), True, draw,
        strengths=(0.0, 0.125, 0.25, 0.5),  # doubled while 80% power is not reached
    )  # fmt: skip


class FoldStats:
    """One test fold's rows of centred activations and their sums (count, column sums,
    cross-products), from which any training fold's statistics follow by subtraction."""

    def __init__(self, X: np.ndarray, rows: np.ndarray) -> None:
        self.rows = rows
        self.n = rows.size
        self.X = X[rows]
        self.sx = self.X.sum(axis=0)
        self.G = self.X.T @ self.X


def ridge_planted_predictions(
    Y: np.ndarray,
    Z: np.ndarray,
    W: np.ndarray,
    strength: float,
    alpha: float,
    folds: list[FoldStats],
) -> np.ndarray:
    """Out-of-fold predictions of ``StandardScaler`` + ``Ridge(alpha)`` fitted to
    ``X + strength * Z @ W`` (X: the centred activations the ``folds`` were made from).

    The planted matrix is never formed: each fold's sums are updated in rank-k form, so a
    draw costs a few (p, p) solves instead of refitting on (n, p) data; equal to the sklearn
    pipeline up to rounding (a test checks it).
    """
    s = strength
    parts = []
    for f in folds:
        Zf, Yf = Z[f.rows], Y[f.rows]
        A = W.T @ (Zf.T @ f.X)  # (p, p): the cross term of the planted part with X
        G = f.G + s * (A + A.T) + s * s * (W.T @ (Zf.T @ Zf) @ W)
        B = f.X.T @ Yf + s * W.T @ (Zf.T @ Yf)
        parts.append((G, f.sx + s * Zf.sum(axis=0) @ W, B, Yf.sum(axis=0)))
    G_all, sx_all, B_all, y_all = (sum(part[i] for part in parts) for i in range(4))
    total = sum(f.n for f in folds)
    pred = np.empty_like(Y)
    for f, (G_te, sx_te, B_te, y_te) in zip(folds, parts, strict=True):
        n = total - f.n
        mu, y_bar = (sx_all - sx_te) / n, (y_all - y_te) / n
        var = np.diag(G_all - G_te) / n - mu**2
        scale = np.sqrt(np.clip(var, 0.0, None))
        scale[scale <= 1e-12 * max(float(scale.max()), 1e-300)] = 1.0  # as StandardScaler
        zz = (G_all - G_te - n * np.outer(mu, mu)) / np.outer(scale, scale)
        zy = (B_all - B_te - n * np.outer(mu, y_bar)) / scale[:, None]
        coef = linalg.solve(zz + alpha * np.eye(zz.shape[0]), zy, assume_a="pos") / scale[:, None]
        pred[f.rows] = (f.X - mu) @ coef + s * Z[f.rows] @ (W @ coef) + y_bar
    return pred


def dimensional_design(
    acts: ActivationSet,
    records: MoralRecords,
    layer: int,
    config: DimensionalConfig,
    alpha: float,
) -> PlantedDesign:
    """Planted linear image of the moral vector, read by the ridge probe at penalty ``alpha``."""
    if not np.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha={alpha!r}: the ridge penalty must be a positive number")
    X = centre_activations(_layer(acts, records, layer, config.pooling)).astype(np.float64)
    Y = records.vectors
    sd = Y.std(axis=0)
    Z = np.where(sd > 0, (Y - Y.mean(axis=0)) / np.where(sd > 0, sd, 1.0), 0.0)
    spread = X.std(axis=0)
    split = KFold(config.cv_folds, shuffle=True, random_state=config.seed).split(X)
    folds = [FoldStats(X, test) for _, test in split]

    def draw(strength: float, rng: np.random.Generator) -> tuple[float, float | None]:
        order = rng.permutation(len(Y))
        W = rng.standard_normal((Y.shape[1], X.shape[1])) / np.sqrt(Y.shape[1]) * spread
        pred = ridge_planted_predictions(Y[order], Z[order], W, strength, alpha, folds)
        return r2_by_dimension(Y[order], pred)[0], None

    return PlantedDesign(
        "dimensional", acts.model_id, layer, "R²",
        "a random linear image of the standardised moral vector (s column standard "
        "deviations) on activations with shuffled targets",
        f"ridge R² (penalty {alpha:.3g}, {config.cv_folds}-fold) above the 95th percentile of "
        "no-effect draws; R² counted above the no-effect draws' mean",
        1.0, False, draw, strengths=(0.0, 0.01, 0.02, 0.04, 0.08, 0.16), null_centred=True,
    )  # fmt: skip


def _ridge_alpha(
    result: Any, acts: ActivationSet, records: MoralRecords, layer: int, config: DimensionalConfig
) -> float:
    """The penalty the ridge probe's cross-validation chose at ``layer`` (median over folds),
    from the result's training table, else from a fresh fit."""
    t = result["training"]
    rows = t[
        (t["model"] == acts.model_id) & (t["layer"] == layer) & (t["probe"] == "ridge_cv")
        & (t["control"] == "none") & (t["weights"] == "trained")
    ]  # fmt: skip
    if len(rows):
        return float(rows["ridge_alpha"].iloc[0])
    X = _layer(acts, records, layer, config.pooling)
    return fit_ridge_probe(X, records.vectors, config, seed=config.seed).alpha


def planted_design(
    diagnostic: str,
    acts: ActivationSet,
    records: MoralRecords,
    layer: int,
    config: Any,
    result: Any = None,
) -> PlantedDesign:
    """The planted design of one diagnostic at one layer (``result`` gives the dimensional
    design its ridge penalty)."""
    if diagnostic == "categorical":
        return categorical_design(acts, records, layer, config)
    if diagnostic == "gradient":
        return gradient_design(acts, records, layer, config)
    if diagnostic == "structural":
        return structural_design(acts, records, layer, config)
    if diagnostic == "dimensional":
        if result is not None:
            alpha = _ridge_alpha(result, acts, records, layer, config)
        else:
            X = _layer(acts, records, layer, config.pooling)
            alpha = fit_ridge_probe(X, records.vectors, config, seed=config.seed).alpha
        return dimensional_design(acts, records, layer, config, alpha)
    raise ValueError(f"unknown diagnostic {diagnostic!r}; expected one of {DIAGNOSTICS}")


def planted_power(
    diagnostic: str,
    acts: Mapping[str, ActivationSet],
    records: MoralRecords,
    result: Any,
    config: Any,
    power: PowerConfig | None = None,
) -> PowerResult:
    """Power curve and MDE of ``diagnostic`` for every model of ``result``, each at the layer
    its verdict is based on (``result.verdict_layers()``); ``acts`` maps model -> activations
    aligned with ``records`` and ``config`` is the diagnostic's config of that run."""
    power = power or PowerConfig()
    layers = result.verdict_layers()
    missing = [m for m in layers if m not in acts]
    if missing:
        raise ValueError(f"no activations for model(s) {missing}")
    return PowerResult.concat(
        power_analysis(planted_design(diagnostic, acts[m], records, layer, config, result), power)
        for m, layer in layers.items()
    )
