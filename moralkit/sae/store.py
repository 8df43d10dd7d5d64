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

``<key>`` is :func:`sae_key` of everything that changes the SAE
(:func:`moralkit.sae.surgery.layer_payloads`: model, layer, pooling, the preset's resolved
settings and seed, the objective, ``sampler_bug``, the labelled records' fingerprint and the
labelled and unlabelled activations). There is no "newest SAE of a preset": an SAE is found only
by the key of the settings and data it was trained with (:func:`stored_folder`), so a lookup
never returns another variant's SAE. Chapters go through chapter 07's recipe,
:func:`moralkit.sae.recipe.sae_surgery`, which trains what is missing and loads the rest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from moralkit import paths
from moralkit.io import atomic_directory

__all__ = [
    "STAGES",
    "LoadedSAE",
    "centred_reconstruction",
    "is_stored",
    "load_sae_dir",
    "sae_cache_dir",
    "sae_key",
    "save_sae_dir",
    "stored_folder",
]

#: an SAE's stage, the one word for pretrained vs fine-tuned (its store key's ``stage`` field;
#: a steering arm names the SAE it steers with by it)
STAGES: tuple[str, ...] = ("pretrained", "finetuned")
SAE_SUBDIR = "sae"
FORMAT = 2  # 2: keys of layer_payloads (every setting); 1 had a per-preset index
META_FILE = "meta.json"  # written last: a folder without it is not a stored SAE


class LoadedSAE(NamedTuple):
    """A trained SAE, the centre it reads inputs around, and its fine-tuned feature ids.

    Unpacks as ``sae, centre, features``. ``features`` is empty for a pretrained SAE.
    """

    sae: Any  # sae_lens.StandardSAE
    centre: torch.Tensor
    features: np.ndarray


def sae_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir`` or ``$MORALKIT_CACHE/sae`` (default ``~/.cache/moralkit/sae``)."""
    return paths.cache_dir("sae", cache_dir)


def sae_key(payload: dict) -> str:
    """Content address of one trained SAE: sha256 of its identifying fields."""
    text = json.dumps({"format": FORMAT, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return path


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


def is_stored(folder: str | Path) -> bool:
    """Whether ``folder`` holds a complete stored SAE."""
    return (Path(folder) / META_FILE).is_file()


def stored_folder(root: str | Path, payload: dict) -> Path:
    """The folder of the SAE stored under ``sae_key(payload)``; ``FileNotFoundError`` naming
    the model, layer, stage and settings when none is."""
    folder = Path(root) / sae_key(payload)
    if not is_stored(folder):
        settings = {k: payload.get(k) for k in ("preset", "objective", "pooling") if k in payload}
        raise FileNotFoundError(
            f"no {payload.get('stage', 'trained')} SAE for model={payload.get('model')!r} "
            f"layer={payload.get('layer')} with these settings ({settings}, key {folder.name}) "
            f"under {folder.parent}: run chapter 07's recipe (moralkit.sae.recipe.sae_surgery) "
            "with the same settings first"
        )
    return folder


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
