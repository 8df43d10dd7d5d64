"""The SAE surgery for one model, layer by layer and seed by seed: pretrain on unlabelled text
(cached), then identify and fine-tune once per cross-fitting fold (cached) (paper §4.2-4.4;
book: Methods › SAE surgery, methods/sae.md).

Pretraining reads unlabelled texts only, so one pretrained SAE per seed serves every fold. The
labelled records are cut into ``n_folds`` folds (:func:`moralkit.sae.data.crossfit_folds`); the
SAE of fold k is identified and fine-tuned on the other folds, and scores fold k. Every
labelled record is thus scored by a fine-tuned SAE that never saw it, and every record counts as
a test record (at least 20 prototypes per category on MoralStrength, where the fixed test split
had 2-3).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moralkit.activation_set import POOLINGS, ActivationSet
from moralkit.records import MoralRecords
from moralkit.sae import store
from moralkit.sae.config import (
    OBJECTIVES,
    FinetuneConfig,
    IdentifyConfig,
    SAETrainConfig,
    finetune_preset,
    preset,
)
from moralkit.sae.data import (
    array_hash,
    crossfit_folds,
    fold_records,
    holdout_split,
    records_hash,
    split_index,
    split_records,
)
from moralkit.sae.finetune import finetune_sae
from moralkit.sae.identify import identify_features
from moralkit.sae.metrics import reconstruction_report
from moralkit.sae.train import to_training_sae, train_sae
from moralkit.threads import torch_threads

__all__ = [
    "LayerSurgery",
    "SurgeryConfig",
    "encode",
    "find_layer",
    "layer_payloads",
    "surgery_from_activations",
    "surgery_config",
]


@dataclass(frozen=True)
class SurgeryConfig:
    """Every setting of chapter 07's recipe: what changes the SAEs, and what the tables show.

    ``train`` and ``finetune`` are the preset's *resolved* settings (the objective's weights and
    ``sampler_bug`` applied by :func:`surgery_config`); each of the ``n_seeds`` training seeds
    (``seed``, ``seed + 1``, ...) replaces their ``seed``. The store key of each SAE holds them,
    not the preset's name alone. ``n_unlabelled`` texts (seeded by ``seed``; -1: all) are the
    pretraining data, with every text of ``exclude_ground_truths`` left out; ``n_folds`` folds
    of the labelled records are cross-fitted, each fine-tuned on the others with
    ``val_fraction`` of them held out for identification and early stopping. ``pooling`` is the
    pooled activation the SAEs read. ``shared_pretraining``: every seed fine-tunes from the
    pretrained SAE of the first seed (its folds and fine-tuning keep its own seed), so the
    seeds' spread is that of fine-tuning and cross-fitting alone (off on every profile; a saving
    where pretraining dominates).
    """

    preset: str = "quick"
    objective: str = "code"
    seed: int = 0
    n_seeds: int = 1
    shared_pretraining: bool = False
    n_folds: int = 5
    val_fraction: float = 0.125
    n_unlabelled: int = -1
    exclude_ground_truths: tuple[str, ...] = ()
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
        if self.n_seeds < 1:
            raise ValueError(f"n_seeds={self.n_seeds}; expected at least 1")
        if self.n_folds < 2:
            raise ValueError(f"n_folds={self.n_folds}; cross-fitting needs at least 2 folds")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction}; expected a fraction in (0, 1)")

    @property
    def sampler_bug(self) -> bool:
        """Whether fine-tuning reproduces the released code's sampler weights."""
        return self.finetune.sampler_bug

    @property
    def seeds(self) -> tuple[int, ...]:
        """The training seeds: ``seed``, ``seed + 1``, ... (``n_seeds`` of them)."""
        return tuple(self.seed + i for i in range(self.n_seeds))

    def pretrain_seed(self, seed: int) -> int:
        """The seed whose pretraining serves training seed ``seed``."""
        return self.seed if self.shared_pretraining else int(seed)

    def train_for(self, seed: int) -> SAETrainConfig:
        """Pretraining settings of one training seed (that of :meth:`pretrain_seed`)."""
        return dataclasses.replace(self.train, seed=self.pretrain_seed(seed))

    def finetune_for(self, seed: int) -> FinetuneConfig:
        """Fine-tuning settings of one training seed."""
        return dataclasses.replace(self.finetune, seed=int(seed))

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> SurgeryConfig:
        """The recipe's settings from a chapter's parameters: ``sae_preset``, ``objective``,
        ``sampler_bug``, ``seed``, ``n_seeds``, ``shared_pretraining``, ``n_folds``,
        ``n_unlabelled``, ``pooling``
        and the ground truths whose texts pretraining leaves out (``ground_truth``,
        ``control_ground_truth``); None: the default."""
        from moralkit.data.ground_truth import ground_truth_names

        given = {
            "preset_name": params.get("sae_preset"),
            "objective": params.get("objective"),
            "sampler_bug": params.get("sampler_bug"),
            "seed": params.get("seed"),
            "n_seeds": params.get("n_seeds"),
            "shared_pretraining": params.get("shared_pretraining"),
            "n_folds": params.get("n_folds"),
            "n_unlabelled": params.get("n_unlabelled"),
            "pooling": params.get("pooling"),
        }
        truths = [params.get(k) for k in ("ground_truth", "control_ground_truth")]
        names = [n for t in truths if t for n in ground_truth_names(t)]
        given["exclude_ground_truths"] = tuple(dict.fromkeys(names))
        return surgery_config(**{k: v for k, v in given.items() if v is not None})


def surgery_config(
    preset_name: str = "quick",
    objective: str = "code",
    sampler_bug: bool = False,
    seed: int = 0,
    n_unlabelled: int = -1,
    pooling: str = "mean",
    n_seeds: int = 1,
    n_folds: int = 5,
    exclude_ground_truths: Sequence[str] = (),
    shared_pretraining: bool = False,
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
        n_seeds=int(n_seeds),
        shared_pretraining=bool(shared_pretraining),
        n_folds=int(n_folds),
        n_unlabelled=int(n_unlabelled),
        exclude_ground_truths=tuple(str(g) for g in exclude_ground_truths),
        pooling=str(pooling),
        train=preset(name, seed=int(seed)),
        finetune=finetune_preset(
            name, sampler_bug=bool(sampler_bug), seed=int(seed), **OBJECTIVES[objective]
        ),
    )


@torch.no_grad()
def encode(sae, centre: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Codes z of raw activations ``x`` (n, d) under ``sae`` reading ``x - centre``."""
    return sae.encode(torch.as_tensor(np.asarray(x) - centre, dtype=torch.float32)).numpy()


@dataclass
class LayerSurgery:
    """One layer and training seed: the pretrained SAE, one fine-tuned SAE per fold (sae-lens
    modules), the centre they read around, the fold of every labelled record, each fold's
    identification and fine-tuned feature ids, where they are stored and how they did."""

    layer: int
    seed: int
    pretrained: object
    centre: np.ndarray
    folds: np.ndarray
    finetuned: list
    features: list
    idents: list
    paths: dict
    meta: dict = field(default_factory=dict)
    fold_meta: list = field(default_factory=list)

    def saes_for(self, stage: str, folds: np.ndarray | None = None) -> list[tuple[object, int]]:
        """``[(sae, fold)]``: the pretrained SAE (fold -1), or each fold's fine-tuned SAE."""
        if stage == "pretrained":
            return [(self.pretrained, -1)]
        return list(zip(self.finetuned, range(len(self.finetuned)), strict=True))

    @torch.no_grad()
    def apply(
        self, x: np.ndarray, stage: str, output: str, folds: np.ndarray | None = None
    ) -> np.ndarray:
        """Reconstructions ``sae(x - c) + c`` (``output="reconstruction"``) or codes
        (``"codes"``) of raw activations ``x``: by the pretrained SAE, or for
        ``stage="finetuned"`` by the SAE of each row's fold (``folds``, default the labelled
        records' own folds: cross-fitted)."""
        folds = self.folds if folds is None else np.asarray(folds)
        xc = torch.as_tensor(np.asarray(x, dtype=np.float32) - self.centre)
        width = self.pretrained.cfg.d_sae if output == "codes" else xc.shape[1]
        out = np.zeros((len(xc), width), dtype=np.float32)
        for sae, fold in self.saes_for(stage):
            rows = np.arange(len(xc)) if fold < 0 else np.flatnonzero(folds == fold)
            z = sae.encode(xc[rows])
            y = z if output == "codes" else sae.decode(z) + torch.as_tensor(self.centre)
            out[rows] = y.numpy()
        return out


def layer_payloads(
    model: str,
    layer: int,
    labelled: np.ndarray,
    records: MoralRecords,
    unlabelled: np.ndarray,
    config: SurgeryConfig,
    seed: int,
) -> dict[str, Any]:
    """What identifies one layer's and seed's SAEs in the store (each key is
    :func:`~moralkit.sae.store.sae_key` of one payload): ``{"pretrained": payload,
    "finetuned": [payload of each fold]}``.

    Every setting that changes an SAE is in it: the preset's name and resolved settings (seed
    included), the pooling, the unlabelled texts' activations (train and validation part); for
    each fine-tuned SAE also its pretrained SAE, the objective and its resolved weights,
    ``sampler_bug``, the identification settings, the fold and the fold's record table (texts,
    labels, typicality and splits drive fine-tuning) with its train/validation activations.
    Two settings that differ anywhere here give two keys, so a lookup never returns another
    variant's SAE.
    """
    tr, va = holdout_split(len(unlabelled), config.train.val_fraction, config.seed)
    where = {"model": model, "layer": int(layer), "pooling": config.pooling}
    pretrained = {
        "stage": "pretrained",
        **where,
        "preset": config.preset,
        "train": config.train_for(seed).key(),
        "unlabelled": array_hash(unlabelled[tr]),
        "unlabelled_val": array_hash(unlabelled[va]),
    }
    folds = crossfit_folds(records, config.n_folds, seed)
    finetuned = []
    for k in range(config.n_folds):
        fold = fold_records(records, folds, k, config.val_fraction, seed)
        rows = [split_index(fold, s) for s in ("train", "val")]
        finetuned.append(
            {
                "stage": "finetuned",
                **where,
                "pretrained": store.sae_key(pretrained),
                "objective": config.objective,
                "fold": k,
                "n_folds": config.n_folds,
                "records": records_hash(fold),
                "labelled": array_hash(*(labelled[r] for r in rows)),
                "identify": dataclasses.asdict(config.identify),
                "finetune": dataclasses.asdict(config.finetune_for(seed)),
            }
        )
    return {"pretrained": pretrained, "finetuned": finetuned}


def find_layer(
    model: str,
    layer: int,
    labelled: np.ndarray,
    records: MoralRecords,
    unlabelled: np.ndarray,
    config: SurgeryConfig,
    cache_dir: str | Path | None = None,
) -> dict[int, dict[str, Any]]:
    """``{seed: {"pretrained": folder, "finetuned": [folder of each fold]}}`` of the SAEs
    stored for exactly these inputs and settings.

    Raises ``FileNotFoundError`` naming the stage when one was never trained so.
    """
    root = store.sae_cache_dir(cache_dir)
    found = {}
    for seed in config.seeds:
        p = layer_payloads(model, layer, labelled, records, unlabelled, config, seed)
        found[seed] = {
            "pretrained": store.stored_folder(root, p["pretrained"]),
            "finetuned": [store.stored_folder(root, f) for f in p["finetuned"]],
        }
    return found


def _pretrained(payload: dict, unlabelled: np.ndarray, config: SurgeryConfig, seed, root):
    folder = root / store.sae_key(payload)
    if not store.is_stored(folder):
        tr, va = holdout_split(len(unlabelled), config.train.val_fraction, config.seed)
        res = train_sae(unlabelled[tr], unlabelled[va], config.train_for(seed), progress=False)
        meta = {
            **payload,
            "metrics": res.metrics,
            "train_seconds": res.train_seconds,
            "samples_seen": res.samples_seen,
            "resampled": res.resampled,
            "n_train": len(tr),
            "n_val": len(va),
        }
        store.save_sae_dir(folder, res.sae, res.centre, meta, res.history)
    return folder


def _finetuned(payload, pre_folder, labelled, fold: MoralRecords, ident, config, root) -> Path:
    folder = root / store.sae_key(payload)
    if not store.is_stored(folder):
        loaded = store.load_sae_dir(pre_folder)
        tr, va = split_index(fold, "train"), split_index(fold, "val")
        # small matrices: one thread avoids OpenMP spin-waiting on a shared CPU (10x faster)
        with torch_threads(1):
            res = finetune_sae(
                to_training_sae(loaded.sae), loaded.centre.numpy(),
                labelled[tr], split_records(fold, "train"), labelled[va],
                split_records(fold, "val"), ident, config, progress=False,
            )  # fmt: skip
        meta = {**payload, "best_epoch": res.best_epoch, "improved": bool(res.improved)}
        store.save_sae_dir(
            folder, res.sae, loaded.centre.numpy(), meta, res.history, ident.selected
        )
    return folder


def _seed_surgery(model, layer, labelled, records, unlabelled, config, seed, root, train):
    payloads = layer_payloads(model, layer, labelled, records, unlabelled, config, seed)
    if not train:  # raise before any work when an SAE is missing
        for payload in [payloads["pretrained"], *payloads["finetuned"]]:
            store.stored_folder(root, payload)
    pre_folder = _pretrained(payloads["pretrained"], unlabelled, config, seed, root)
    pre = store.load_sae_dir(pre_folder)
    centre = pre.centre.numpy()
    folds = crossfit_folds(records, config.n_folds, seed)
    finetuned, features, idents, ft_paths, fold_meta = [], [], [], [], []
    for k, payload in enumerate(payloads["finetuned"]):
        fold = fold_records(records, folds, k, config.val_fraction, seed)
        va = split_index(fold, "val")
        z = encode(pre.sae, centre, labelled[va])
        ident = identify_features(z, split_records(fold, "val"), config.identify)
        ft_cfg = config.finetune_for(seed)
        folder = _finetuned(payload, pre_folder, labelled, fold, ident, ft_cfg, root)
        ft = store.load_sae_dir(folder)
        finetuned.append(ft.sae)
        features.append(ft.features)
        idents.append(ident)
        ft_paths.append(folder)
        fold_meta.append(json.loads((folder / store.META_FILE).read_text()))
    meta = json.loads((pre_folder / store.META_FILE).read_text())
    paths = {"pretrained": pre_folder, "finetuned": ft_paths}
    return LayerSurgery(
        int(layer), int(seed), pre.sae, centre, folds, finetuned, features, idents, paths,
        meta, fold_meta,
    )  # fmt: skip


def held_out_report(s: LayerSurgery, labelled: np.ndarray, unlabelled_val: np.ndarray) -> dict:
    """How both stages reconstruct what they never trained on
    (:func:`~moralkit.sae.metrics.reconstruction_report`): on the labelled records (cross-fitted
    for the fine-tuned SAEs), with dead latents counted on the labelled records and the
    held-out unlabelled texts together."""
    x = np.asarray(labelled, dtype=np.float32)
    both = np.concatenate([x, unlabelled_val])
    folds = np.concatenate([s.folds, np.zeros(len(unlabelled_val), dtype=int)])
    out = {}
    for stage in ("pretrained", "finetuned"):
        codes = s.apply(both, stage, "codes", folds)
        report = reconstruction_report(x, s.apply(x, stage, "reconstruction"), codes[: len(x)])
        fires = (codes > 0).mean(axis=0)
        report["dead_fraction"] = float((fires == 0).mean())
        report["dense"] = int((fires > 0.5).sum())
        prefix = "" if stage == "pretrained" else "finetuned_"
        out |= {f"{prefix}{k}": v for k, v in report.items() if k != "dead"}
    return out


def surgery_from_activations(
    model: str,
    acts: ActivationSet,
    records: MoralRecords,
    unlabelled: ActivationSet | None,
    layers: Sequence[int] | None = None,
    config: SurgeryConfig | None = None,
    cache_dir: str | Path | None = None,
    train: bool = True,
):
    """Pretrain each seed's SAE on the unlabelled activations, then identify and fine-tune it
    once per fold of the labelled records; cached on disk (see the module docstring).

    An SAE already stored for the same inputs and settings (:func:`layer_payloads`) is loaded,
    not trained; ``train=False`` raises ``FileNotFoundError`` instead of training a missing one.
    Chapters call this through :func:`moralkit.sae.recipe.sae_surgery`, which builds the inputs.
    """
    from moralkit.sae.tables import SurgeryResult

    config = config or SurgeryConfig()
    n_texts = 0 if unlabelled is None else unlabelled.n_texts
    if n_texts < 2:
        raise ValueError(
            "SAE pretraining reads unlabelled texts only: n_unlabelled must give at least 2 "
            f"texts (got {n_texts})"
        )
    root = store.sae_cache_dir(cache_dir)
    layers = list(layers if layers is not None else acts.layers)
    out = []
    for layer in layers:
        labelled = acts.get(layer, config.pooling)
        extra = np.asarray(unlabelled.get(layer, config.pooling), dtype=np.float32)
        _, va = holdout_split(len(extra), config.train.val_fraction, config.seed)
        for seed in config.seeds:
            s = _seed_surgery(model, layer, labelled, records, extra, config, seed, root, train)
            s.meta["held_out"] = held_out_report(s, labelled, extra[va])
            out.append(s)
    return SurgeryResult.build(model, out, acts, records, config)
