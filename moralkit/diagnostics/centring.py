"""Per-layer centring and category centres shared by all diagnostics.

(paper §2.1-2.2; book: Methods › Activations, methods/activations.md, and Methods ›
Categorical, methods/categorical.md)

The paper's "anisotropy correction" subtracts, per model and layer, the mean activation over
all diagnostic records before any cosine is taken. Category centres are means of the centred
representations of each category's prototypes (typicality 1.0 records).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.inputs import (
    LayersArg,
    check_alignment,
    check_pooling,
    stored_layers,
)
from moralkit.foundations import DIMENSIONS
from moralkit.records import MoralRecords


def centre_activations(X: np.ndarray, standardise: bool = False) -> np.ndarray:
    """Subtract the mean over all records from one layer's (n, d) activations (paper §2.1).

    The mean is accumulated in float64 so large float32 layers do not lose precision. With
    ``standardise=True`` every dimension is also divided by its standard deviation (a
    robustness check, not the paper's method): it stops a few "massive activation"
    dimensions from dominating every cosine.
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"expected one layer's (n, d) activations, got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError("cannot centre an empty activation matrix")
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    Xc = X - X.mean(axis=0, dtype=np.float64)
    if standardise:
        std = Xc.std(axis=0)
        Xc = Xc / np.where(std > 0, std, 1.0)
    return Xc.astype(dtype)


def dimension_dominance(
    acts: ActivationSet | Sequence[ActivationSet],
    layers: LayersArg = None,
    pooling: str = "mean",
    k: int = 3,
) -> pd.DataFrame:
    """How much a few dimensions dominate the centred activations, per layer.

    Columns: model, layer, relative_depth, ``top_k_variance_share`` (share of the total
    centred variance in the ``k`` largest-variance dimensions), ``top_dimensions`` and
    ``norm_max_over_median`` (largest record norm / median record norm). Large values mean
    cosines are driven by a handful of coordinates ("massive activations"), which the paper's
    centring does not remove. ``acts`` may be several models' sets: their rows are stacked.
    """
    if not isinstance(acts, ActivationSet):
        frames = [dimension_dominance(a, layers, pooling, k) for a in acts]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows = []
    for layer in stored_layers(acts, layers):
        Xc = centre_activations(acts.get(layer, pooling).astype(np.float64))
        var = Xc.var(axis=0)
        top = np.argsort(var)[::-1][:k]
        norms = np.linalg.norm(Xc, axis=1)
        rows.append(
            {
                "model": acts.model_id,
                "layer": layer,
                "relative_depth": acts.relative_depth(layer),
                "top_k_variance_share": float(var[top].sum() / var.sum()) if var.sum() else 0.0,
                "top_dimensions": ",".join(str(int(i)) for i in top),
                "norm_max_over_median": float(norms.max() / np.median(norms))
                if np.median(norms) > 0
                else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def summarise_dominance(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, the median and maximum over layers of :func:`dimension_dominance`'s shares."""
    columns = ["top_k_variance_share", "norm_max_over_median"]
    return table.groupby("model", sort=False)[columns].agg(["median", "max"])


def category_codes(records: MoralRecords) -> np.ndarray:
    """Index into :data:`DIMENSIONS` for every record; -1 for neutral records."""
    lookup = {name: i for i, name in enumerate(DIMENSIONS)}
    return np.array([lookup.get(c, -1) for c in records.table["category"]], dtype=np.int64)


def prototype_mask(records: MoralRecords, mask: np.ndarray | pd.Series | None = None) -> np.ndarray:
    """Boolean mask of polar prototype records, optionally restricted further by ``mask``."""
    table = records.table
    keep = table["is_prototype"].to_numpy(dtype=bool) & (table["pole"] != "neutral").to_numpy()
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != keep.shape:
            raise ValueError(f"mask has shape {mask.shape}; expected ({len(records)},)")
        keep &= mask
    return keep


def category_centres(
    Xc: np.ndarray,
    records: MoralRecords,
    mask: np.ndarray | pd.Series | None = None,
) -> np.ndarray:
    """The (10, d) category centres: mean centred prototype representation per category.

    Rows follow :data:`DIMENSIONS` (paper §2.2). ``Xc`` are centred activations aligned
    with ``records``; ``mask`` optionally restricts which prototypes build the centres (e.g.
    one half of the prototypes in the held-out gradient variant). A category without
    prototypes gets a NaN row and a warning, so downstream cosines come out NaN rather than
    silently wrong.
    """
    Xc = np.asarray(Xc)
    if Xc.ndim != 2 or Xc.shape[0] != len(records):
        raise ValueError(
            f"activations have shape {Xc.shape}; expected ({len(records)}, d) rows aligned"
            " with records"
        )
    keep = prototype_mask(records, mask)
    codes = category_codes(records)[keep]
    # One-hot matrix product: fast and exact enough in float64.
    onehot = np.zeros((len(DIMENSIONS), codes.size), dtype=np.float64)
    onehot[codes, np.arange(codes.size)] = 1.0
    counts = onehot.sum(axis=1)
    sums = onehot @ Xc[keep].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = sums / counts[:, None]
    empty = [DIMENSIONS[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        warnings.warn(
            f"no prototype records for categories {empty}; their centres are NaN",
            stacklevel=2,
        )
        centres[counts == 0] = np.nan
    return centres


def iter_centred_layers(
    acts: ActivationSet,
    records: MoralRecords,
    layers: LayersArg = None,
    pooling: str = "mean",
    desc: str | None = None,
    progress: bool = True,
    standardise: bool = False,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(layer, relative_depth, centred float64 activations)`` for each chosen layer.

    Validates alignment and layers once, then centres each layer over all records
    (paper §2.1) with a progress bar over layers; ``standardise`` as in
    :func:`centre_activations`.
    """
    check_alignment(acts, records)
    chosen = stored_layers(acts, layers)
    check_pooling(acts, pooling)
    for layer in tqdm(chosen, desc=desc or acts.model_id, disable=not progress, leave=False):
        X = acts.get(layer, pooling).astype(np.float64)
        yield layer, acts.relative_depth(layer), centre_activations(X, standardise=standardise)
