"""What a chapter run used and wrote, and the provenance block that shows it.

:class:`RunLog` collects the models, data, claims and output files of one run; :func:`record`
turns it into the JSON-ready dict that ``<out>/provenance.json`` holds and the page shows
(:func:`moralkit.provenance.provenance_markdown`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from moralkit import provenance as prov
from moralkit.activation_set import ActivationSet
from moralkit.display import show_markdown

if TYPE_CHECKING:
    from moralkit.models import LoadedModel
    from moralkit.records import MoralRecords

#: the chapter parameters the extractor reads, passed as resolved (None: the extractor's own)
EXTRACTION_PARAMETERS = ("poolings", "template", "dtype", "device")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class RunLog:
    """The models, data, claims and outputs of one chapter run, and its clock."""

    models: dict[str, dict] = field(default_factory=dict)
    data: dict[str, dict] = field(default_factory=dict)
    claims: dict[str, dict] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    started: str = field(default_factory=_now)
    t0: float = field(default_factory=time.perf_counter)
    #: what the run adds to the cache tells a cold run from a warm one
    cache_before: set[str] = field(default_factory=prov.cache_files)

    def __post_init__(self) -> None:
        if torch.cuda.is_available():  # the peak shown is this chapter's
            torch.cuda.reset_peak_memory_stats()

    def add_extraction(self, entry: dict, elapsed: float) -> None:
        """Log an extraction; the same one again (same cache key) adds up its time."""
        entry["extraction_s"] = round(elapsed, 2)
        key = entry["cache_key"] or f"{entry['name']}|{entry['variant']}|{entry['n_texts']}"
        previous = self.models.get(key)
        if previous:
            entry["extraction_s"] = round(previous["extraction_s"] + elapsed, 2)
            entry["cache_hit"] = bool(previous["cache_hit"]) and bool(entry["cache_hit"])
        self.models[key] = entry


def _variant(overrides: Mapping[str, Any]) -> str:
    """What a chapter asked beyond the profile (e.g. ``random_init=True``)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def data_entry(ground_truth: str, scale: float, seed: int, records: MoralRecords) -> dict:
    """The provenance entry of one set of records (data files' checksums included)."""
    info = dict(records.provenance)
    return {
        "ground_truth": ground_truth,
        "sample_scale": scale,
        "seed": seed,
        "n_records": len(records),
        "checksums": dict(info.pop("files", None) or {}),
        "details": prov.to_jsonable(info),
    }


def extraction_entry(
    model_name: str,
    n_texts: int,
    acts: ActivationSet,
    options: Mapping[str, Any],
    overrides: Mapping[str, Any],
) -> dict:
    """The provenance entry of one extraction (its time is added by :class:`RunLog`)."""
    meta = acts.meta
    return {
        "name": model_name,
        "variant": _variant(overrides),
        "model_id": meta.get("model_id", acts.model_id),
        "revision": meta.get("revision"),
        "weights_hash": meta.get("weights_hash"),
        "n_layers": acts.n_model_layers,
        "layers": list(acts.layers),
        # the values the extractor used (its meta), else those it was given
        **{k: meta.get(k, options.get(k)) for k in EXTRACTION_PARAMETERS},
        "n_texts": n_texts,
        "cache_key": meta.get("cache_key"),
        "cache_hit": meta.get("cache_hit"),
    }


def loaded_entry(
    model_name: str, loaded: LoadedModel, overrides: Mapping[str, Any], elapsed: float
) -> dict:
    """The provenance entry of a model a chapter loaded to run it."""
    return {
        "name": model_name,
        "variant": _variant(overrides),
        "model_id": (loaded.spec.hf_id if loaded.spec else None) or loaded.name,
        "revision": loaded.revision,
        "weights_hash": loaded.weights_hash,
        "n_layers": loaded.n_layers,
        "dtype": loaded.dtype,
        "device": loaded.device,
        "load_s": round(elapsed, 2),
    }


def record(
    chapter_id: str, params: Mapping[str, Any], output_dir: Path, log: RunLog, status: str = "ok"
) -> dict:
    """Everything the provenance block shows, as a JSON-ready dict."""
    env = prov.environment_provenance(params.get("device"))
    return prov.to_jsonable(
        {
            "chapter": chapter_id,
            "profile": params["profile"],
            "status": status,
            "params": params,
            "models": list(log.models.values()),
            "data": list(log.data.values()),
            "claims": sorted(log.claims),
            "outputs": [os.path.relpath(p, output_dir) for p in dict.fromkeys(log.outputs)],
            **env,
            "started": log.started,
            "finished": _now(),
            "wall_time_s": round(time.perf_counter() - log.t0, 2),
            "cache_writes": len(prov.cache_files() - log.cache_before),
            "peak_memory_mb": round(prov.peak_memory_mb(), 1),
            "peak_gpu_memory_mb": prov.peak_gpu_memory_mb(),
        }
    )


def finish(provenance: dict, output_dir: Path) -> None:
    """Write ``<out>/provenance.json`` and show the provenance block."""
    prov.write_json(provenance, output_dir / "provenance.json")
    show_markdown("**Provenance of this page**\n\n" + prov.provenance_markdown(provenance))
