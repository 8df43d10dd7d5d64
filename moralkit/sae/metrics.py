"""How well an SAE reconstructs, and the gate that decides whether its layer is re-diagnosed
(paper §4.2; book: Methods › SAE surgery, methods/sae.md).

Explained variance alone can pass on one dimension: at SmolLM2-135M's layers 6 and 8 a single
direction carries half or more of the centred variance of pooled activations, so an SAE that
reconstructs that direction and little else still "explains" most of the variance. Every report
therefore also gives the explained variance with the top principal direction of the evaluated
activations projected out (``explained_variance_rest``), and the share of variance that
direction carries. The gate (:func:`reconstruction_gate`) needs both to reach the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from moralkit.results import Gate

__all__ = [
    "GATE_NAME",
    "passes_gate",
    "reconstruction_gate",
    "reconstruction_metrics",
    "reconstruction_report",
    "top_direction",
]

GATE_NAME = "sae_reconstruction"


def top_direction(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Unit vector of the largest-variance direction of ``x`` (n, d), in float32."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    xc = x - x.mean(dim=0)
    _, vectors = torch.linalg.eigh(xc.T @ xc)
    return vectors[:, -1].float()


def reconstruction_report(
    x: np.ndarray | torch.Tensor,
    x_hat: np.ndarray | torch.Tensor,
    codes: np.ndarray | torch.Tensor,
    direction: torch.Tensor | None = None,
) -> dict[str, float]:
    """How ``x_hat`` reconstructs ``x`` (n, d) with latent codes ``codes`` (n, d_sae).

    ``mse`` (mean over rows and inputs), ``explained_variance`` (1 - SSE / SST about the mean),
    ``explained_variance_rest`` (the same with ``direction``, default the top principal
    direction of ``x``, projected out of both), ``top_direction_share`` (its share of SST),
    ``l0`` (mean active latents), ``dead`` and ``dense`` (latents firing on no row / on more
    than half of the rows).
    """
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    err = torch.as_tensor(np.asarray(x_hat), dtype=torch.float64) - x
    u = top_direction(x) if direction is None else torch.as_tensor(direction)
    u = u.double()
    xc = x - x.mean(dim=0)
    sse, sst = float((err**2).sum()), float((xc**2).sum())
    sse_top, sst_top = float(((err @ u) ** 2).sum()), float(((xc @ u) ** 2).sum())
    active = torch.as_tensor(np.asarray(codes)) > 0
    fired = active.sum(dim=0)  # rows each latent fired on (integer: exact comparisons)
    rest = sst - sst_top
    return {
        "mse": sse / max(x.numel(), 1),
        "explained_variance": 1 - sse / sst if sst > 0 else float("nan"),
        "explained_variance_rest": 1 - (sse - sse_top) / rest if rest > 0 else float("nan"),
        "top_direction_share": sst_top / sst if sst > 0 else float("nan"),
        "l0": float(active.sum(dim=1).double().mean()) if len(active) else float("nan"),
        "dead": int((fired == 0).sum()),
        "dense": int((2 * fired > len(active)).sum()),
    }


@torch.no_grad()
def reconstruction_metrics(
    sae, x: torch.Tensor, direction: torch.Tensor | None = None
) -> dict[str, float]:
    """:func:`reconstruction_report` of ``sae`` on centred activations ``x``."""
    x = torch.as_tensor(x, dtype=torch.float32)
    z = sae.encode(x)
    return reconstruction_report(x, sae.decode(z), z, direction)


def reconstruction_gate(
    rows: list[Mapping[str, Any]], settings: Mapping[str, Any], what: str = ""
) -> Gate:
    """``sae_reconstruction``: every SAE in ``rows`` (each with ``label``,
    ``explained_variance``, ``explained_variance_rest`` and ``dead_fraction``) keeps at least
    ``settings["min_explained_variance"]`` of the test variance, also with the top direction
    removed, with fewer than ``settings["max_dead_fraction"]`` dead latents."""
    ev, dead = float(settings["min_explained_variance"]), float(settings["max_dead_fraction"])
    passed = bool(rows) and all(passes_gate(r, settings) for r in rows)
    shown = "; ".join(
        f"{r['label']}: explained variance {r['explained_variance']:.2f} "
        f"({r['explained_variance_rest']:.2f} without the top direction), "
        f"dead {r['dead_fraction']:.1%}"
        for r in rows
    )
    need = f"need explained variance ≥ {ev:g} with and without the top direction, dead < {dead:.0%}"
    return Gate(GATE_NAME, passed, f"{what}{shown or 'not recorded'} ({need})")


def passes_gate(row: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    """Whether one SAE's report passes :func:`reconstruction_gate`."""
    ev, dead = float(settings["min_explained_variance"]), float(settings["max_dead_fraction"])
    values = [row["explained_variance"], row["explained_variance_rest"], row["dead_fraction"]]
    if not np.isfinite(values).all():
        return False
    return bool(min(values[0], values[1]) >= ev and values[2] < dead)
