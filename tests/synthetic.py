"""Synthetic records and activations with planted structure, for diagnostic tests.

The generator builds a :class:`~moralkit.records.MoralRecords` table with every column the
real loaders produce, and an :class:`~moralkit.activation_set.ActivationSet` whose layers
each follow a *plan*: a named arrangement of the ten category directions (or an explicit
``(10, d)`` array). A record of category ``c`` with typicality ``t`` is

    h = offset + gain(t) * direction[c] + noise,

and a neutral record is ``offset + noise``. ``offset`` is a large shared vector (the
anisotropy the paper's centring removes), so tests also check that centring happens.

Plans (per layer):
- ``"opposed"``: vice direction = -virtue direction for every foundation;
- ``"identical"``: vice direction = virtue direction;
- ``"random"``: ten independent random unit directions;
- ``"shared"``: every category = a common direction plus a small category-specific part;
- ``"none"``: no signal at all (pure noise plus offset).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from moralkit.activation_set import ActivationSet
from moralkit.foundations import DIMENSIONS, FOUNDATIONS, TYPICALITY_STRATA
from moralkit.records import MoralRecords

PLANS = ("opposed", "identical", "random", "shared", "none")


def make_records(
    n_per_stratum: int = 12,
    n_prototypes: int = 24,
    n_neutral: int = 24,
    prototypes: Mapping[str, int] | None = None,
    seed: int = 0,
) -> MoralRecords:
    """A balanced record table: per category ``n_per_stratum`` records at each non-prototype
    typicality, ``n_prototypes`` prototypes (typicality 1.0; override per category with
    ``prototypes``), and ``n_neutral`` neutral records per foundation."""
    rng = np.random.default_rng(seed)
    rows = []
    for f_idx, foundation in enumerate(FOUNDATIONS):
        for pole_idx, pole in enumerate(("virtue", "vice")):
            category = DIMENSIONS[2 * f_idx + pole_idx]
            n_proto = (prototypes or {}).get(category, n_prototypes)
            strata = [t for t in TYPICALITY_STRATA if t < 1.0 for _ in range(n_per_stratum)]
            strata += [1.0] * n_proto
            for t in strata:
                rows.append((foundation, pole, category, t))
        rows.extend((foundation, "neutral", "neutral", 0.0) for _ in range(n_neutral))
    table = pd.DataFrame(rows, columns=["foundation", "pole", "category", "typicality"])
    n = len(table)
    table.insert(0, "record_id", [f"syn-{i}" for i in range(n)])
    table.insert(1, "source_id", [f"src-{i}" for i in range(n)])
    table.insert(2, "source", "synthetic")
    table.insert(3, "text", [f"synthetic action {i}" for i in range(n)])
    table["is_prototype"] = table["typicality"] == 1.0
    table["stratum"] = np.where(
        table["pole"] == "neutral",
        "neutral",
        table["pole"] + np.where(table["is_prototype"], "_typical", ""),
    )
    table["split"] = rng.choice(["train", "val", "test"], size=n, p=[0.8, 0.1, 0.1])
    for d in DIMENSIONS:
        table[d] = np.where(table["category"] == d, table["typicality"], 0.0)
    return MoralRecords(table, {"source": "synthetic", "seed": seed})


def plan_directions(plan: str, width: int, rng: np.random.Generator) -> np.ndarray:
    """The (10, width) unit category directions for one named plan."""
    if plan not in PLANS:
        raise ValueError(f"unknown plan {plan!r}; expected one of {PLANS}")

    def unit(k: int) -> np.ndarray:
        v = rng.standard_normal((k, width))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    if plan == "none":
        return np.zeros((len(DIMENSIONS), width))
    if plan == "random":
        return unit(len(DIMENSIONS))
    if plan == "shared":
        v = unit(1) + 0.3 * unit(len(DIMENSIONS))
        return v / np.linalg.norm(v, axis=1, keepdims=True)
    virtue = unit(len(FOUNDATIONS))
    vice = -virtue if plan == "opposed" else virtue
    return np.stack([x for pair in zip(virtue, vice, strict=True) for x in pair])


def make_activations(
    records: MoralRecords,
    plan: Mapping[int, str | np.ndarray],
    n_model_layers: int | None = None,
    width: int = 64,
    signal: float = 1.0,
    noise: float = 0.3,
    offset: float = 5.0,
    gain: str = "typicality",
    seed: int = 0,
    model_id: str = "synthetic",
) -> ActivationSet:
    """Activations aligned with ``records``, one planted layout per layer.

    ``plan`` maps layer -> a plan name or an explicit (10, width) direction array.
    ``noise`` is the expected norm of each record's isotropic noise; ``signal`` the norm of a
    prototype's planted component. ``gain="typicality"`` scales the planted component by the
    record's typicality (the gradient the paper looks for); ``"constant"`` gives every polar
    record the full component.
    """
    if gain not in ("typicality", "constant"):
        raise ValueError(f"gain must be 'typicality' or 'constant', got {gain!r}")
    rng = np.random.default_rng(seed)
    table = records.table
    lookup = {d: i for i, d in enumerate(DIMENSIONS)}
    codes = np.array([lookup.get(c, -1) for c in table["category"]])
    polar = codes >= 0
    scale = table["typicality"].to_numpy() if gain == "typicality" else polar.astype(float)
    shared = offset * rng.standard_normal(width) / np.sqrt(width)
    per_layer = {}
    for layer, spec in plan.items():
        dirs = plan_directions(spec, width, rng) if isinstance(spec, str) else np.asarray(spec)
        if dirs.shape != (len(DIMENSIONS), width):
            raise ValueError(f"layer {layer} directions have shape {dirs.shape}")
        X = np.tile(shared, (len(table), 1))
        X[polar] += signal * scale[polar, None] * dirs[codes[polar]]
        X += noise * rng.standard_normal(X.shape) / np.sqrt(width)
        per_layer[int(layer)] = X
    return ActivationSet.from_arrays(per_layer, n_model_layers=n_model_layers, model_id=model_id)
