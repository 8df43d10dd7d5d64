"""Where trained SAEs live on disk, and how to load them (paper §4.2; book: Methods › SAE
surgery, methods/sae.md).

One folder per trained SAE, written atomically::

    <cache>/sae/<key>/
        sae/             sae-lens format: cfg.json + sae_weights.safetensors
                         (``sae_lens.SAE.load_from_disk(<key>/sae)`` loads it)
        centre.npy       the per-layer train mean c: the SAE reads x - c
        features.npy     the fine-tuned feature ids (fine-tuned SAEs only)
        meta.json        model, layer, settings, data hash, metrics
        history.csv      per-epoch curves

``<key>`` hashes (model, layer, data hash, settings). An index file per
(model, layer, preset, kind) names the newest folder, so other parts of moralkit (steering)
find an SAE without recomputing the key: :func:`load_trained`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from moralkit.io import atomic_directory, atomic_write_text

__all__ = [
    "KINDS",
    "LoadedSAE",
    "centred_reconstruction",
    "find_trained",
    "load_sae_dir",
    "load_trained",
    "sae_cache_dir",
    "sae_key",
    "save_sae_dir",
]

KINDS: tuple[str, ...] = ("pretrained", "finetuned")
SAE_SUBDIR = "sae"
FORMAT = 1


class LoadedSAE(NamedTuple):
    """A trained SAE, the centre it reads inputs around, and its fine-tuned feature ids.

    Unpacks as ``sae, centre, features``. ``features`` is empty for a pretrained SAE.
    """

    sae: Any  # sae_lens.StandardSAE
    centre: torch.Tensor
    features: np.ndarray


def sae_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` or ``$MORALKIT_CACHE/sae`` (default ``~/.cache/moralkit/sae``)."""
    if cache_dir is not None:
        return Path(cache_dir)
    root = os.environ.get("MORALKIT_CACHE") or Path.home() / ".cache" / "moralkit"
    return Path(root) / "sae"


def sae_key(payload: dict) -> str:
    """Content address of one trained SAE: sha256 of its identifying fields."""
    text = json.dumps({"format": FORMAT, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_") or "model"


def _index_path(root: Path, model: str, layer: int, preset: str, kind: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    return root / "index" / _slug(model) / _slug(preset) / f"layer{int(layer)}-{kind}.json"


def save_sae_dir(
    path: Path,
    sae: Any,
    centre: np.ndarray,
    meta: dict,
    history: pd.DataFrame | None = None,
    features: np.ndarray | None = None,
) -> Path:
    """Write one SAE folder atomically (see the module docstring for its layout)."""
    with atomic_directory(path) as tmp:
        if hasattr(sae, "save_inference_model"):
            sae.save_inference_model(tmp / SAE_SUBDIR)
        else:
            sae.save_model(tmp / SAE_SUBDIR)
        np.save(tmp / "centre.npy", np.asarray(centre, dtype=np.float32))
        if features is not None:
            np.save(tmp / "features.npy", np.asarray(features, dtype=np.int64))
        if history is not None:
            history.to_csv(tmp / "history.csv", index=False)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    return path


def register(root: Path, model: str, layer: int, preset: str, kind: str, folder: Path) -> None:
    """Point the (model, layer, preset, kind) index at ``folder`` (atomic write)."""
    index = _index_path(root, model, layer, preset, kind)
    atomic_write_text(json.dumps({"path": str(Path(folder).resolve())}), index)


def load_sae_dir(path: str | Path, device: str = "cpu") -> LoadedSAE:
    """Load one SAE folder written by :func:`save_sae_dir`."""
    from sae_lens import SAE

    path = Path(path)
    if not (path / SAE_SUBDIR / "cfg.json").is_file():
        raise FileNotFoundError(f"{path} is not an SAE folder: it lacks {SAE_SUBDIR}/cfg.json")
    sae = SAE.load_from_disk(path / SAE_SUBDIR, device=device)
    centre = torch.from_numpy(np.load(path / "centre.npy")).to(device)
    feats = path / "features.npy"
    features = np.load(feats) if feats.is_file() else np.zeros(0, dtype=np.int64)
    return LoadedSAE(sae, centre, features)


def find_trained(
    model: str,
    layer: int,
    kind: str = "pretrained",
    preset: str = "quick",
    cache_dir: str | Path | None = None,
) -> Path:
    """The folder of the newest SAE trained for (model, layer, preset, kind)."""
    index = _index_path(sae_cache_dir(cache_dir), model, layer, preset, kind)
    if not index.is_file():
        raise FileNotFoundError(
            f"no {kind} SAE for model={model!r} layer={layer} preset={preset!r} under "
            f"{index.parent}: run chapter 07 (or moralkit.sae.pipeline.run_layer) first"
        )
    return Path(json.loads(index.read_text())["path"])


def load_trained(
    model: str,
    layer: int,
    kind: str = "pretrained",
    preset: str = "quick",
    cache_dir: str | Path | None = None,
    device: str = "cpu",
) -> LoadedSAE:
    """``(sae, centre, features)`` of the SAE trained for (model, layer, preset, kind).

    ``sae`` is a ``sae_lens`` SAE reading *centred* inputs: reconstruct a raw residual vector
    ``h`` as ``sae(h - centre) + centre`` (:func:`centred_reconstruction`). ``features`` are
    the fine-tuned feature ids (empty for ``kind="pretrained"``).
    """
    return load_sae_dir(find_trained(model, layer, kind, preset, cache_dir), device=device)


@torch.no_grad()
def centred_reconstruction(
    sae: Any, centre: torch.Tensor, h: torch.Tensor | np.ndarray, batch: int = 4096
) -> torch.Tensor:
    """``sae(h - centre) + centre`` for raw activations ``h`` of shape (..., d)."""
    h = torch.as_tensor(h, dtype=centre.dtype, device=centre.device)
    flat = h.reshape(-1, h.shape[-1])
    out = torch.cat(
        [
            sae.decode(sae.encode(flat[i : i + batch] - centre)) + centre
            for i in range(0, len(flat), batch)
        ]
        or [flat[:0]]
    )
    return out.reshape(h.shape)
