"""The SAE surgery for one model, layer by layer: pretrain (cached), identify, fine-tune
(cached), with tidy tables (paper §4.2-4.4; book: Methods › SAE surgery, methods/sae.md).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from moralkit.activation_set import POOLINGS, ActivationSet
from moralkit.foundations import DIMENSIONS
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult, ClaimValue
from moralkit.sae import store
from moralkit.sae.config import (
    OBJECTIVES,
    FinetuneConfig,
    IdentifyConfig,
    SAETrainConfig,
    finetune_preset,
    preset,
)
from moralkit.sae.data import array_hash, pretraining_split, records_hash, split_index
from moralkit.sae.finetune import finetune_sae
from moralkit.sae.identify import Identification, identify_features, top_records
from moralkit.sae.train import reconstruction_metrics, to_training_sae, train_sae

__all__ = [
    "LayerSurgery",
    "SurgeryConfig",
    "SurgeryResult",
    "encode",
    "find_layer",
    "layer_payloads",
    "surgery_from_activations",
    "surgery_config",
]


@dataclass(frozen=True)
class SurgeryConfig:
    """Every setting of chapter 07's recipe: what changes the SAEs, and what the tables show.

    ``train`` and ``finetune`` are the preset's *resolved* settings (with ``seed``, the
    objective's weights and ``sampler_bug`` applied by :func:`surgery_config`); the store key of
    each SAE holds them, not the preset's name alone. ``n_unlabelled`` texts join pretraining
    (:func:`moralkit.data.unlabelled.unlabelled_texts`, seeded by ``seed``); ``pooling`` is the
    pooled activation the SAEs read.
    """

    preset: str = "quick"
    objective: str = "code"
    seed: int = 0
    n_unlabelled: int = 0
    pooling: str = "mean"
    train: SAETrainConfig = field(default_factory=lambda: preset("quick"))
    identify: IdentifyConfig = IdentifyConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    top_features: int = 3  # features whose top records the chapter shows, per layer

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}; expected one of {list(OBJECTIVES)}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling={self.pooling!r}; expected one of {list(POOLINGS)}")
        if self.n_unlabelled < -1:
            raise ValueError(f"n_unlabelled={self.n_unlabelled}; expected -1 (all) or >= 0")

    @property
    def sampler_bug(self) -> bool:
        """Whether fine-tuning reproduces the released code's sampler weights."""
        return self.finetune.sampler_bug

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> SurgeryConfig:
        """The recipe's settings from a chapter's parameters: ``sae_preset``, ``objective``,
        ``sampler_bug``, ``seed``, ``n_unlabelled`` and ``pooling`` (None: the default)."""
        given = {
            "preset_name": params.get("sae_preset"),
            "objective": params.get("objective"),
            "sampler_bug": params.get("sampler_bug"),
            "seed": params.get("seed"),
            "n_unlabelled": params.get("n_unlabelled"),
            "pooling": params.get("pooling"),
        }
        return surgery_config(**{k: v for k, v in given.items() if v is not None})


def surgery_config(
    preset_name: str = "quick",
    objective: str = "code",
    sampler_bug: bool = False,
    seed: int = 0,
    n_unlabelled: int = 0,
    pooling: str = "mean",
) -> SurgeryConfig:
    """The settings of one preset; ``objective`` is ``code`` (six terms) or ``page`` (three
    named losses plus reconstruction); ``sampler_bug`` reproduces the code's sampler."""
    if objective not in OBJECTIVES:  # before OBJECTIVES[objective] below
        raise ValueError(f"objective={objective!r}; expected one of {list(OBJECTIVES)}")
    name = str(preset_name)
    return SurgeryConfig(
        preset=name,
        objective=objective,
        seed=int(seed),
        n_unlabelled=int(n_unlabelled),
        pooling=str(pooling),
        train=preset(name, seed=int(seed)),
        finetune=finetune_preset(
            name, sampler_bug=bool(sampler_bug), seed=int(seed), **OBJECTIVES[objective]
        ),
    )


@dataclass
class LayerSurgery:
    """Everything one layer's surgery produced (the SAEs are sae-lens modules).

    ``features`` are the fine-tuned feature ids stored with the fine-tuned SAE.
    """

    layer: int
    pretrained: object
    finetuned: object
    centre: np.ndarray
    ident: Identification
    paths: dict
    features: np.ndarray


@torch.no_grad()
def encode(sae, centre: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Codes z of raw activations ``x`` (n, d) under ``sae`` reading ``x - centre``."""
    return sae.encode(torch.as_tensor(np.asarray(x) - centre, dtype=torch.float32)).numpy()


def layer_payloads(
    model: str,
    layer: int,
    labelled: np.ndarray,
    records: MoralRecords,
    unlabelled: np.ndarray | None,
    config: SurgeryConfig,
) -> dict[str, dict]:
    """What identifies one layer's pretrained and fine-tuned SAE in the store (its key is
    :func:`~moralkit.sae.store.sae_key` of this), per stage.

    Every setting that changes an SAE is in it: the preset's name and resolved settings (seed
    included), the pooling, the labelled records' train/validation activations, the unlabelled
    texts' activations; for the fine-tuned SAE also its pretrained SAE, the objective and its
    resolved weights, ``sampler_bug``, the identification settings and the labelled records'
    fingerprint (typicality, poles and splits drive fine-tuning). Two settings that differ
    anywhere here give two keys, so a lookup never returns another variant's SAE.
    """
    tr, va = split_index(records, "train"), split_index(records, "val")
    labelled_hash = array_hash(labelled[tr], labelled[va])
    unlabelled_hash = None if unlabelled is None or not len(unlabelled) else array_hash(unlabelled)
    where = {"model": model, "layer": int(layer), "pooling": config.pooling}
    pretrained = {
        "stage": "pretrained",
        **where,
        "preset": config.preset,
        "train": config.train.key(),
        "labelled": labelled_hash,
        "unlabelled": unlabelled_hash,
    }
    finetuned = {
        "stage": "finetuned",
        **where,
        "pretrained": store.sae_key(pretrained),
        "objective": config.objective,
        "records": records_hash(records),
        "labelled": labelled_hash,
        "identify": dataclasses.asdict(config.identify),
        "finetune": dataclasses.asdict(config.finetune),
    }
    return {"pretrained": pretrained, "finetuned": finetuned}


def find_layer(
    model: str,
    layer: int,
    labelled: np.ndarray,
    records: MoralRecords,
    unlabelled: np.ndarray | None,
    config: SurgeryConfig,
    cache_dir: str | Path | None = None,
) -> dict[str, Path]:
    """``{stage: folder}`` of the SAEs stored for exactly these inputs and settings.

    Raises ``FileNotFoundError`` naming the missing stage when either was never trained so.
    """
    root = store.sae_cache_dir(cache_dir)
    payloads = layer_payloads(model, layer, labelled, records, unlabelled, config)
    return {stage: store.stored_folder(root, payload) for stage, payload in payloads.items()}


def _pretrained(payload: dict, train_x, val_x, config: SurgeryConfig, root: Path) -> Path:
    folder = root / store.sae_key(payload)
    if not store.is_stored(folder):
        res = train_sae(train_x, val_x, config.train, progress=False)
        meta = {
            **payload,
            "metrics": res.metrics,
            "train_seconds": res.train_seconds,
            "samples_seen": res.samples_seen,
            "n_train": len(train_x),
            "n_val": len(val_x),
        }
        store.save_sae_dir(folder, res.sae, res.centre, meta, res.history)
    return folder


def _finetuned(payload, pre_folder, acts, records, ident, config, root) -> Path:
    folder = root / store.sae_key(payload)
    if not store.is_stored(folder):
        tr, va = split_index(records, "train"), split_index(records, "val")
        loaded = store.load_sae_dir(pre_folder)
        centre = loaded.centre.numpy()
        res = finetune_sae(
            to_training_sae(loaded.sae),
            centre,
            acts[tr],
            records.where(records.table["split"] == "train"),
            acts[va],
            records.where(records.table["split"] == "val"),
            ident,
            config.finetune,
            progress=False,
        )
        meta = {**payload, "best_epoch": res.best_epoch}
        store.save_sae_dir(folder, res.sae, centre, meta, res.history, ident.selected)
    return folder


def _layer(model, layer, labelled, records, unlabelled, config, root, train) -> LayerSurgery:
    payloads = layer_payloads(model, layer, labelled, records, unlabelled, config)
    if not train:  # raise before any work when an SAE is missing
        for payload in payloads.values():
            store.stored_folder(root, payload)
    train_x, val_x = pretraining_split(labelled, records, unlabelled)
    pre_folder = _pretrained(payloads["pretrained"], train_x, val_x, config, root)
    pre = store.load_sae_dir(pre_folder)
    centre = pre.centre.numpy()
    va = split_index(records, "val")
    val_records = records.where(records.table["split"] == "val")
    ident = identify_features(encode(pre.sae, centre, labelled[va]), val_records, config.identify)
    ft_payload = payloads["finetuned"]
    ft_folder = _finetuned(ft_payload, pre_folder, labelled, records, ident, config, root)
    ft = store.load_sae_dir(ft_folder)
    paths = {"pretrained": pre_folder, "finetuned": ft_folder}
    return LayerSurgery(layer, pre.sae, ft.sae, centre, ident, paths, ft.features)


def surgery_from_activations(
    model: str,
    acts: ActivationSet,
    records: MoralRecords,
    unlabelled: ActivationSet | None = None,
    layers: Sequence[int] | None = None,
    config: SurgeryConfig | None = None,
    cache_dir: str | Path | None = None,
    train: bool = True,
) -> SurgeryResult:
    """Pretrain, identify and fine-tune one SAE per layer of ``model``; cached on disk.

    An SAE already stored for the same inputs and settings (:func:`layer_payloads`) is loaded,
    not trained; ``train=False`` raises ``FileNotFoundError`` instead of training a missing one.
    Chapters call this through :func:`moralkit.sae.recipe.sae_surgery`, which builds the inputs.
    """
    config = config or SurgeryConfig()
    root = store.sae_cache_dir(cache_dir)
    layers = list(layers if layers is not None else acts.layers)
    out = []
    for layer in layers:
        labelled_x = acts.get(layer, config.pooling)
        unlabelled_x = unlabelled.get(layer, config.pooling) if unlabelled is not None else None
        out.append(_layer(model, layer, labelled_x, records, unlabelled_x, config, root, train))
    return SurgeryResult.build(model, out, acts, records, config)


class SurgeryResult(AnalysisResult):
    """Tables of the surgery: pretraining metrics and curves, feature typing, fine-tuning."""

    TABLES: ClassVar[tuple[str, ...]] = (
        "layers",
        "pretrain_history",
        "features",
        "finetune_history",
        "top_records",
    )
    BEST_TABLE: ClassVar[str] = "layers"
    BEST_COLUMN: ClassVar[str] = "layer_score"
    #: the per-layer SAEs behind the tables (set by :meth:`build`; not saved as a table)
    surgeries: list
    #: what the surgery read (set by :func:`moralkit.sae.recipe.sae_surgery`)
    inputs: Any = None

    @classmethod
    def build(cls, model, surgeries, acts, records, config) -> SurgeryResult:
        rows, hist, feats, ft_hist, tops = [], [], [], [], []
        te = split_index(records, "test")
        test_records = records.where(records.table["split"] == "test")
        for s in surgeries:
            meta = json.loads((s.paths["pretrained"] / "meta.json").read_text())
            x_test = torch.as_tensor(acts.get(s.layer, config.pooling)[te] - s.centre)
            test_m = reconstruction_metrics(s.pretrained, x_test)
            ft_m = reconstruction_metrics(s.finetuned, x_test)
            rows.append(
                {
                    "model": model,
                    "layer": s.layer,
                    "d_sae": s.pretrained.cfg.d_sae,
                    "n_train": meta["n_train"],
                    "n_val": meta["n_val"],
                    **{f"test_{k}": v for k, v in test_m.items()},
                    "variance_lost": 1 - test_m["explained_variance"],
                    "finetuned_test_mse": ft_m["mse"],
                    "finetuned_variance_lost": 1 - ft_m["explained_variance"],
                    "lambda": meta["metrics"]["lambda"],
                    "epochs": meta["metrics"]["epochs"],
                    "train_seconds": meta["train_seconds"],
                    **s.ident.scores,
                }
            )
            hist.append(
                pd.read_csv(s.paths["pretrained"] / "history.csv").assign(
                    model=model, layer=s.layer
                )
            )
            ft_hist.append(
                pd.read_csv(s.paths["finetuned"] / "history.csv").assign(model=model, layer=s.layer)
            )
            ftab = s.ident.feature_table().assign(model=model, layer=s.layer)
            r = pd.DataFrame(s.ident.r, columns=list(DIMENSIONS))
            feats.append(pd.concat([ftab, r], axis=1))
            z = encode(s.pretrained, s.centre, acts.get(s.layer, config.pooling)[te])
            best = np.argsort(-np.abs(s.ident.r).max(axis=1))[: config.top_features]
            tops.append(top_records(z, test_records, best).assign(model=model, layer=s.layer))
        tables = {
            "layers": pd.DataFrame(rows),
            "pretrain_history": pd.concat(hist),
            "features": pd.concat(feats),
            "finetune_history": pd.concat(ft_hist),
            "top_records": pd.concat(tops),
        }
        result = cls({k: v.reset_index(drop=True) for k, v in tables.items()}, config)
        result.surgeries = surgeries
        return result

    def saes(self) -> dict[str, dict[int, tuple[object, np.ndarray]]]:
        """``{"pretrained"|"finetuned": {layer: (sae, centre)}}`` for :func:`rediagnose`."""
        return {
            "pretrained": {s.layer: (s.pretrained, s.centre) for s in self.surgeries},
            "finetuned": {s.layer: (s.finetuned, s.centre) for s in self.surgeries},
        }

    def claim(self) -> list[ClaimValue]:
        """``sae_monosemantic_scarce``: the largest monosemantic share over the layers, with
        the share expected by chance on as many validation records."""
        layers = self.tables["layers"]
        best = layers.loc[layers["mono_ratio"].idxmax()]
        return [
            ClaimValue(
                "sae_monosemantic_scarce",
                round(float(best["mono_ratio"]), 4),
                note=(
                    f"largest monosemantic share over layers: {best['model']} layer "
                    f"{int(best['layer'])} ({int(best['d_sae'])} features); share expected by "
                    f"chance on {int(best['n_val'])} validation records: "
                    f"{float(best['mono_ratio_chance']):.3f}; variance the SAE loses on test: "
                    f"{float(best['variance_lost']):.3f}"
                ),
                extra={"chance": round(float(best["mono_ratio_chance"]), 4)},
            )
        ]
