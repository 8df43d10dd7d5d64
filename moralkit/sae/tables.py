"""The tables of chapter 07's surgery: per layer and seed, per fold, training curves, feature
typing (paper §4.2-4.4; book: Methods › SAE surgery, methods/sae.md)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.centring import category_codes, prototype_mask
from moralkit.foundations import DIMENSIONS
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult, ClaimValue, claim_settings
from moralkit.sae.identify import identify_features, top_records
from moralkit.sae.metrics import passes_gate

__all__ = ["GATE_CLAIM", "SurgeryResult", "gate_settings", "test_prototypes"]

#: the claim whose ``measure:`` in claims.yaml holds the reconstruction gate's thresholds
GATE_CLAIM = "sae_typicality_up"


def gate_settings() -> dict[str, Any]:
    """The reconstruction gate's thresholds (claims.yaml, ``measure:`` of the SAE claims)."""
    return dict(claim_settings(GATE_CLAIM))


def _fold_rows(model: str, s, records: MoralRecords) -> list[dict]:
    proto = prototype_mask(records)
    codes = category_codes(records)
    rows = []
    for k, (meta, ident) in enumerate(zip(s.fold_meta, s.idents, strict=True)):
        test = s.folds == k
        per_category = np.bincount(codes[test & proto], minlength=len(DIMENSIONS))
        rows.append(
            {
                "model": model, "layer": s.layer, "seed": s.seed, "fold": k,
                "n_test": int(test.sum()), "min_test_prototypes": int(per_category.min()),
                "best_epoch": int(meta["best_epoch"]), "improved": bool(meta["improved"]),
                "n_selected": int(ident.scores["n_selected"]),
                "n_strict": int(ident.scores["n_strict"]),
            }
        )  # fmt: skip
    return rows


def test_prototypes(records: MoralRecords) -> int:
    """The fewest prototypes of any category among ``records``: with cross-fitting every
    labelled record is a test record, so this is each category's count of test prototypes."""
    codes = category_codes(records)[prototype_mask(records)]
    return int(np.bincount(codes, minlength=len(DIMENSIONS)).min())


def _layer_row(model: str, s, fold_rows: list[dict], ident, settings) -> dict:
    held = s.meta["held_out"]
    best = [r["best_epoch"] for r in fold_rows]
    improved = sum(r["improved"] for r in fold_rows)
    metrics = s.meta["metrics"]
    row = {
        "model": model, "layer": s.layer, "seed": s.seed, "d_sae": s.pretrained.cfg.d_sae,
        "n_train": s.meta["n_train"], "n_val": s.meta["n_val"], "n_labelled": len(s.folds),
        **held,
        "unlabelled_val_explained_variance": metrics["explained_variance"],
        "variance_lost": 1 - held["explained_variance"],
        "lambda": metrics["lambda"], "epochs": metrics["epochs"],
        "resampled": s.meta.get("resampled", 0), "train_seconds": s.meta["train_seconds"],
        "best_epoch": float(np.median(best)), "best_epochs": ",".join(map(str, best)),
        "folds_improved": improved, "n_folds": len(fold_rows), **ident.scores,
    }  # fmt: skip
    gated = [
        {"explained_variance": held[f"{p}explained_variance"],
         "explained_variance_rest": held[f"{p}explained_variance_rest"],
         "dead_fraction": held[f"{p}dead_fraction"]}
        for p in ("", "finetuned_")
    ]  # fmt: skip
    row["passes_gate"] = all(passes_gate(g, settings) for g in gated)
    return row


class SurgeryResult(AnalysisResult):
    """Tables of the surgery: ``layers`` (one row per layer and seed: reconstruction of the
    labelled records by both stages, dead and dense latents, the kept fine-tuning epochs, the
    gate, feature typing), ``folds`` (one row per fold), ``pretrain_history``,
    ``finetune_history``, ``features`` and ``top_records``."""

    TABLES: ClassVar[tuple[str, ...]] = (
        "layers",
        "folds",
        "pretrain_history",
        "features",
        "finetune_history",
        "top_records",
    )
    BEST_TABLE: ClassVar[str] = "layers"
    BEST_COLUMN: ClassVar[str] = "layer_score"
    #: the per-layer, per-seed SAEs behind the tables (set by :meth:`build`; not a table)
    surgeries: list
    #: what the surgery read (set by :func:`moralkit.sae.recipe.sae_surgery`)
    inputs: Any = None

    @classmethod
    def build(cls, model, surgeries, acts: ActivationSet, records: MoralRecords, config):
        """The tables of ``surgeries`` (:class:`~moralkit.sae.surgery.LayerSurgery`)."""
        from moralkit.sae.surgery import encode

        settings = gate_settings()
        tables: dict[str, list] = {name: [] for name in cls.TABLES}
        for s in surgeries:
            x = acts.get(s.layer, config.pooling)
            z = encode(s.pretrained, s.centre, x)
            ident = identify_features(z, records, config.identify)  # descriptive: all records
            folds = _fold_rows(model, s, records)
            tables["folds"] += folds
            row = _layer_row(model, s, folds, ident, settings)
            tables["layers"].append({**row, "test_prototypes_min": test_prototypes(records)})
            label = {"model": model, "layer": s.layer, "seed": s.seed}
            tables["pretrain_history"].append(
                pd.read_csv(s.paths["pretrained"] / "history.csv").assign(**label)
            )
            for k, path in enumerate(s.paths["finetuned"]):
                history = pd.read_csv(path / "history.csv").assign(**label, fold=k)
                tables["finetune_history"].append(history)
            ftab = ident.feature_table().assign(**label)
            r = pd.DataFrame(ident.r, columns=list(DIMENSIONS))
            tables["features"].append(pd.concat([ftab, r], axis=1))
            best = np.argsort(-np.abs(ident.r).max(axis=1))[: config.top_features]
            tables["top_records"].append(top_records(z, records, best).assign(**label))
        frames = {
            k: (pd.DataFrame(v) if k in ("layers", "folds") else pd.concat(v, ignore_index=True))
            for k, v in tables.items()
        }
        result = cls({k: v.reset_index(drop=True) for k, v in frames.items()}, config)
        result.surgeries = surgeries
        return result

    def gated_layers(self) -> list[int]:
        """The layers whose SAEs pass the reconstruction gate for every seed."""
        t = self.tables["layers"]
        ok = t.groupby("layer")["passes_gate"].all()
        return [int(layer) for layer, passed in ok.items() if passed]

    def gate_note(self) -> str:
        """Markdown: which layers pass the reconstruction gate, and why the others do not."""
        t = self.tables["layers"]
        settings = gate_settings()
        ev, dead = settings["min_explained_variance"], settings["max_dead_fraction"]
        lines = []
        for layer, g in t.groupby("layer"):
            worst = min(g["explained_variance"].min(), g["finetuned_explained_variance"].min())
            rest = min(
                g["explained_variance_rest"].min(), g["finetuned_explained_variance_rest"].min()
            )
            died = max(g["dead_fraction"].max(), g["finetuned_dead_fraction"].max())
            shown = (
                f"lowest explained variance {worst:.3f}, {rest:.3f} without the top direction "
                f"(which carries {g['top_direction_share'].mean():.0%} of the variance); most "
                f"dead latents {died:.1%}, over {len(g)} seeds and both stages"
            )
            verdict = "passes the gate" if g["passes_gate"].all() else "is **below the gate**"
            lines.append(f"- Layer {int(layer)} {verdict}: {shown}.")
        need = f"explained variance ≥ {ev:g} with and without the top direction, dead < {dead:.0%}"
        return f"Gate ({need}); only layers that pass are re-diagnosed:\n\n" + "\n".join(lines)

    def finetune_note(self) -> str:
        """Markdown: in how many folds fine-tuning beat the pretrained SAE on validation."""
        f = self.tables["folds"]
        never = f[~f["improved"]]
        head = (
            f"Fine-tuning beat the pretrained SAE's validation objective (epoch 0) in "
            f"{int(f['improved'].sum())} of {len(f)} folds; kept epochs "
            f"{sorted(set(f['best_epoch']))}."
        )
        if never.empty:
            return head
        which = ", ".join(
            f"layer {r.layer} seed {r.seed} fold {r.fold}" for r in never.itertuples()
        )
        return (
            f"{head} **Fine-tuning never improved on validation** in {which}: those folds keep "
            "their best fine-tuned epoch (early stopping starts from +inf, as in the official "
            "code), which is no better than the pretrained SAE on the validation objective."
        )

    def surgery(self, layer: int, seed: int | None = None):
        """The :class:`~moralkit.sae.surgery.LayerSurgery` of ``layer`` and ``seed`` (default:
        the first seed)."""
        for s in self.surgeries:
            if s.layer == int(layer) and (seed is None or s.seed == int(seed)):
                return s
        raise KeyError(f"no SAE surgery for layer {layer}, seed {seed}")

    def claim(self) -> list[ClaimValue]:
        """``sae_monosemantic_scarce``: the largest mean (over seeds) monosemantic share over
        the layers, typed on all labelled records, with the share expected by chance."""
        t = self.tables["layers"]
        by_layer = t.groupby("layer")[["mono_ratio", "mono_ratio_chance"]].mean()
        layer = int(by_layer["mono_ratio"].idxmax())
        rows = t[t["layer"] == layer]
        share = float(by_layer.loc[layer, "mono_ratio"])
        per_seed = {int(r.seed): round(float(r.mono_ratio), 4) for r in rows.itertuples()}
        note = (
            f"largest monosemantic share over layers: {rows['model'].iloc[0]} layer {layer} "
            f"({int(rows['d_sae'].iloc[0])} features), mean over {len(rows)} seeds "
            f"(per seed {per_seed}); share expected by chance on {int(rows['n_labelled'].iloc[0])}"
            f" records: {float(by_layer.loc[layer, 'mono_ratio_chance']):.3f}; variance the "
            f"pretrained SAE loses on them: {float(rows['variance_lost'].mean()):.3f}"
        )
        extra = {"chance": round(float(by_layer.loc[layer, "mono_ratio_chance"]), 4),
                 "per_seed": per_seed}  # fmt: skip
        return [ClaimValue("sae_monosemantic_scarce", round(share, 4), note, extra)]
