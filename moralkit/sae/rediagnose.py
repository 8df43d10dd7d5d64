"""Re-diagnosis: the four diagnostics on test-split activations before and after the surgery
(paper §5.4; book: Methods › SAE surgery, methods/sae.md).

Three conditions, the same test records, the SAE layers only:

- ``original``: the model's activations;
- ``pretrained``: their reconstruction by the pretrained SAE (control: is a change just
  reconstruction?);
- ``finetuned``: their reconstruction by the fine-tuned SAE.

Each condition goes through :func:`moralkit.diagnostics.diagnose`; the headline of each
diagnostic (best layer among the SAE layers) is compared. Intervals on the differences come
from a paired bootstrap over test records (every condition sees the same resample; basic
interval, centred on the estimate), and each diagnostic gets a verdict on its primary metric:
``gain`` when the interval of the improvement excludes 0 on the good side, ``loss`` when on the
bad side, ``no change`` otherwise (``no interval`` when the diagnostic is not bootstrapped).
How well each SAE reconstructs the test activations (explained variance, dead latents) is
recorded beside them: the claims are gated on it (``sae_reconstruction`` in claims.yaml).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics import DIAGNOSTICS, diagnose, headline_table
from moralkit.records import MoralRecords
from moralkit.results import AnalysisResult, ClaimValue, Gate, claim_settings
from moralkit.sae.store import centred_reconstruction

__all__ = [
    "CONDITIONS",
    "PRIMARY_METRICS",
    "RediagnosisConfig",
    "RediagnosisResult",
    "reconstructed_set",
    "rediagnose",
]

CONDITIONS: tuple[str, ...] = ("original", "pretrained", "finetuned")
#: The metric each verdict reads, and which direction is better (+1 higher, -1 lower).
PRIMARY_METRICS: dict[str, tuple[str, int]] = {
    "categorical": ("virtue_vice_cosine", -1),
    "gradient": ("spearman_heldout", +1),
    "structural": ("ari_mft15", +1),
    "dimensional": ("r2_ridge_cv", +1),
}
_DIRECTION_BY_PREFIX = {"virtue_vice": -1, "mean_offdiag": -1, "noise_ratio": -1}


def _direction(metric: str) -> int:
    return next((d for p, d in _DIRECTION_BY_PREFIX.items() if metric.startswith(p)), +1)


def _light_configs() -> dict[str, dict]:
    # fewer inner resamples than the chapters 02-05 defaults: the test split is small and the
    # paired bootstrap below gives the intervals the verdicts read
    return {
        "categorical": {"n_permutations": 50, "n_bootstrap": 50},
        "gradient": {"n_bootstrap": 50},
        "structural": {"n_permutations": 1},
        "dimensional": {"probes": ("ridge_cv",), "controls": ()},
    }


def _bootstrap_configs() -> dict[str, dict]:
    return {
        "categorical": {"n_permutations": 1, "n_bootstrap": 1},
        "gradient": {"n_bootstrap": 0},
        "structural": {"n_permutations": 1},
        "dimensional": {"probes": ("ridge_cv",), "controls": ()},
    }


@dataclass(frozen=True)
class RediagnosisConfig:
    """Which diagnostics, their configs (name -> XConfig or its fields), and the bootstrap.

    ``configs`` set each diagnostic (default: fewer inner resamples than chapters 02-05 and
    the ridge probe only); ``n_bootstrap`` paired resamples of the test records, run for the
    diagnostics in ``bootstrap_which`` with ``bootstrap_configs`` (no inner resampling), give
    the intervals of the differences. Diagnostics outside ``bootstrap_which`` get a difference
    but no interval, and the verdict "no interval".
    """

    which: tuple[str, ...] = DIAGNOSTICS
    configs: Mapping[str, Any] = field(default_factory=_light_configs)
    bootstrap_which: tuple[str, ...] = ("categorical", "gradient")
    bootstrap_configs: Mapping[str, Any] = field(default_factory=_bootstrap_configs)
    n_bootstrap: int = 20
    level: float = 0.95
    pooling: str = "mean"
    seed: int = 0


def reconstructed_set(
    acts: ActivationSet, saes: Mapping[int, tuple[Any, np.ndarray]], pooling: str = "mean"
) -> ActivationSet:
    """An ActivationSet of SAE reconstructions ``sae(h - c) + c`` for each layer of ``saes``."""
    layers = sorted(saes)
    stacked = []
    for layer in layers:
        sae, centre = saes[layer]
        c = torch.as_tensor(np.asarray(centre, dtype=np.float32))
        stacked.append(centred_reconstruction(sae, c, acts.get(layer, pooling)).numpy())
    meta = {**acts.meta, "reconstructed_by": "sae"}
    return ActivationSet(
        {pooling: np.stack(stacked)}, tuple(layers), acts.n_model_layers, acts.model_id, meta
    )


def _diagnose_each(acts, records, which, configs) -> dict:
    """Each diagnostic alone; one that cannot run on these records (e.g. the categorical one
    on a ground truth without vice records) is left out."""
    out = {}
    for name in which:
        cfg = {name: configs[name]} if name in configs else None
        try:
            out |= diagnose(acts, records, which=(name,), configs=cfg)
        except (ValueError, KeyError, np.linalg.LinAlgError):
            continue
    return out


def _headlines(sets: Mapping[str, ActivationSet], records, which, configs) -> pd.DataFrame:
    frames = [
        headline_table(_diagnose_each(acts, records, which, configs), condition=name)
        for name, acts in sets.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _wide(headlines: pd.DataFrame) -> pd.DataFrame:
    keys = ["model", "diagnostic", "metric", "condition"]
    return headlines.set_index(keys)["value"].unstack("condition")


def _bootstrap(sets, records: MoralRecords, config: RediagnosisConfig, progress: bool):
    rng = np.random.default_rng(config.seed)
    draws = []
    for b in tqdm(range(config.n_bootstrap), desc="bootstrap", disable=not progress):
        idx = np.sort(rng.integers(0, len(records), len(records)))
        sub = {k: v.take(idx) for k, v in sets.items()}
        rec = MoralRecords(records.table.iloc[idx].reset_index(drop=True), records.provenance)
        configs = dict(config.configs) | dict(config.bootstrap_configs)
        which = [w for w in config.which if w in config.bootstrap_which]
        heads = _headlines(sub, rec, which, configs)
        if len(heads):
            draws.append(_wide(heads).assign(draw=b))
    return pd.concat(draws) if draws else None


def _verdict(lo: float, hi: float, sign: int) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    if sign * lo > 0 and sign * hi > 0:
        return "gain"
    if sign * lo < 0 and sign * hi < 0:
        return "loss"
    return "no change"


def _differences(wide: pd.DataFrame, boot: pd.DataFrame | None, level: float) -> pd.DataFrame:
    rows = []
    alpha = (1 - level) / 2
    for key, row in wide.iterrows():
        for cond in ("pretrained", "finetuned"):
            diff = row.get(cond, np.nan) - row.get("original", np.nan)
            lo = hi = np.nan
            if boot is not None and key in boot.index:
                d = (boot.loc[[key], cond] - boot.loc[[key], "original"]).dropna().to_numpy()
                if len(d) >= 2 and np.isfinite(diff):
                    # basic (pivotal) interval: centred on the estimate even when the
                    # resamples are biased (few prototypes per category in a small test split)
                    q_lo, q_hi = np.quantile(d, [alpha, 1 - alpha])
                    lo, hi = 2 * diff - q_hi, 2 * diff - q_lo
            sign = _direction(key[2])
            verdict = _verdict(lo, hi, sign)
            rows.append(
                {
                    "model": key[0],
                    "diagnostic": key[1],
                    "metric": key[2],
                    "condition": cond,
                    "original": row.get("original", np.nan),
                    "value": row.get(cond, np.nan),
                    "difference": diff,
                    "ci_low": lo,
                    "ci_high": hi,
                    "better": "higher" if sign > 0 else "lower",
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


def rediagnose(
    acts: ActivationSet,
    records: MoralRecords,
    saes: Mapping[str, Mapping[int, tuple[Any, np.ndarray]]],
    config: RediagnosisConfig | None = None,
    ground_truth: str = "",
    progress: bool = False,
) -> RediagnosisResult:
    """Diagnose ``acts`` (rows = ``records``) and their reconstructions by ``saes``.

    ``saes`` maps a condition (``"pretrained"``, ``"finetuned"``) to ``{layer: (sae,
    centre)}``; only those layers are diagnosed. Pass test-split records only.
    """
    config = config or RediagnosisConfig()
    layers = sorted(next(iter(saes.values())))
    original = acts.select_layers(layers)
    if config.pooling not in original.arrays:
        raise ValueError(f"pooling={config.pooling!r} not stored in acts ({acts.poolings})")
    original = dataclasses.replace(
        original, arrays={config.pooling: original.arrays[config.pooling]}
    )
    sets = {"original": original}
    sets |= {k: reconstructed_set(original, v, config.pooling) for k, v in saes.items()}
    headlines = _headlines(sets, records, config.which, dict(config.configs))
    boot = _bootstrap(sets, records, config, progress) if config.n_bootstrap else None
    diffs = _differences(_wide(headlines), boot, config.level)
    label = {"ground_truth": ground_truth, "n_records": len(records)}
    tables = {
        "headlines": headlines.assign(**label),
        "differences": diffs.assign(**label),
        "reconstruction": reconstruction_table(original, saes, config.pooling).assign(**label),
    }
    return RediagnosisResult(tables, config)


def reconstruction_table(
    acts: ActivationSet, saes: Mapping[str, Mapping[int, tuple[Any, np.ndarray]]], pooling: str
) -> pd.DataFrame:
    """Per condition and layer: the share of the activations' variance the SAE reconstruction
    keeps (1 - SSE / SST about the mean) and the fraction of latents that never fire on them."""
    rows = []
    for condition, by_layer in saes.items():
        for layer, (sae, centre) in sorted(by_layer.items()):
            h = np.asarray(acts.get(layer, pooling), dtype=np.float32)
            c = torch.as_tensor(np.asarray(centre, dtype=np.float32))
            with torch.no_grad():
                z = sae.encode(torch.as_tensor(h) - c)
                rec = (sae.decode(z) + c).numpy()
            sst = float(((h - h.mean(axis=0)) ** 2).sum())
            fires = (z > 0).any(dim=0).numpy()
            rows.append(
                {
                    "condition": condition,
                    "layer": layer,
                    "explained_variance": 1 - float(((h - rec) ** 2).sum()) / sst
                    if sst
                    else np.nan,
                    "dead_fraction": float(1 - fires.mean()),
                }
            )
    return pd.DataFrame(rows, columns=["condition", "layer", "explained_variance", "dead_fraction"])


class RediagnosisResult(AnalysisResult):
    """``headlines`` (one row per condition x diagnostic x metric), ``differences``
    (pretrained / finetuned minus original, bootstrap interval, verdict) and ``reconstruction``
    (each SAE's explained variance and dead latents on the test activations). ``best()`` is
    :meth:`verdicts`."""

    TABLES: ClassVar[tuple[str, ...]] = ("headlines", "differences", "reconstruction")

    def best(self) -> pd.DataFrame:
        return self.verdicts()

    def verdicts(self) -> pd.DataFrame:
        """One row per ground truth x diagnostic x condition on the primary metric."""
        d = self.tables["differences"]
        keep = [
            d["metric"].eq(PRIMARY_METRICS.get(g, ("",))[0]) & d["diagnostic"].eq(g)
            for g in PRIMARY_METRICS
        ]
        return d[np.logical_or.reduce(keep)].reset_index(drop=True)

    def claim(self) -> list[ClaimValue]:
        """``sae_typicality_up`` and ``sae_opposing_similarity_down`` on the fine-tuning
        ground truth (the first one in the table): the fine-tuned reconstruction's improvement
        on the primary metric (oriented so that larger is better) with its interval, gated on
        the SAEs' reconstruction and on the number of resamples (claims.yaml ``measure:``)."""
        v = self.verdicts()
        v = v[(v["condition"] == "finetuned") & (v["ground_truth"] == v["ground_truth"].iloc[0])]
        out = []
        for claim_id, diagnostic in (
            ("sae_typicality_up", "gradient"),
            ("sae_opposing_similarity_down", "categorical"),
        ):
            row = v[v["diagnostic"] == diagnostic]
            if row.empty:
                continue
            out.append(self._improvement(claim_id, row.iloc[0]))
        return out

    def _improvement(self, claim_id: str, r: pd.Series) -> ClaimValue:
        sign = 1 if r["better"] == "higher" else -1
        low, high = sorted((sign * r["ci_low"], sign * r["ci_high"]))
        interval = {"ci_low": low, "ci_high": high} if np.isfinite([low, high]).all() else {}
        note = (
            f"{r['metric']}: {r['original']:.3f} → {r['value']:.3f} (difference "
            f"{r['difference']:+.3f}, 95% CI [{r['ci_low']:.3f}, {r['ci_high']:.3f}]; verdict "
            f"{r['verdict']}; test split, {r['ground_truth']})"
        )
        extra = {
            "difference": float(r["difference"]),
            "metric": r["metric"],
            "verdict": r["verdict"],
        }
        return ClaimValue(
            claim_id,
            round(float(sign * r["difference"]), 4),
            note,
            extra,
            gates=self.gates(claim_settings(claim_id)),
            **interval,
        )

    def gates(self, settings: Mapping[str, Any]) -> list[Gate]:
        """``sae_reconstruction`` (every fine-tuned SAE keeps at least ``min_explained_variance``
        of the test variance with fewer than ``max_dead_fraction`` dead latents) and
        ``enough_resamples`` (the intervals' bootstrap has at least ``min_resamples``)."""
        rec = self.tables["reconstruction"]
        rec = rec[rec["condition"] == "finetuned"]
        ev, dead = settings["min_explained_variance"], settings["max_dead_fraction"]
        ok = (rec["explained_variance"] >= ev) & (rec["dead_fraction"] < dead)
        shown = "; ".join(
            f"layer {int(x.layer)}: explained variance {x.explained_variance:.2f}, "
            f"dead {x.dead_fraction:.0%}"
            for x in rec.itertuples()
        )
        n_boot = self.config.n_bootstrap if self.config else 0
        need = int(settings["min_resamples"])
        return [
            Gate(
                "sae_reconstruction",
                bool(len(rec)) and bool(ok.all()),
                f"{shown or 'not recorded'} (need explained variance ≥ {ev:g}, dead < {dead:.0%})",
            ),
            Gate("enough_resamples", n_boot >= need, f"{n_boot} resamples (need {need})"),
        ]

    @classmethod
    def stack(cls, results: Sequence[RediagnosisResult]) -> RediagnosisResult:
        """Results on several ground truths in one (the first is the fine-tuning one)."""
        return cls.concat(results)
