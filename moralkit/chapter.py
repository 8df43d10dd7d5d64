"""The Chapter API every notebook uses: parameters, data, activations, outputs, provenance.

A notebook's single ``parameters`` cell holds ``profile = "quick"`` and the chapter's parameters
set to ``None`` (None = take the profile's value). Then::

    from moralkit.chapter import Chapter
    ch = Chapter.start("02_categorical_indifference", profile=profile, model=model, layers=layers)
    p = ch.params                        # validated: p["layers"] is a LayerSpec, p["model"] a list
    records = ch.records()               # moralkit.data.diagnostic_records(...), provenance kept
    for name in ch.models:
        acts = ch.activations(name, records)   # ch.layers(name) of this model, profile settings
    result = categorical(acts, records, ch.config(CategoricalConfig))
    ch.save_result(result)               # every table as CSV + a download link
    ch.record_claims(result.claim())     # <out>/claims.json, judged by claims.yaml
    ch.save_figure(fig, "cosine_by_layer", data=df)  # PNG + CSV in <out>/figures/, shown once
    ch.finish()                          # provenance table + <out>/provenance.json

Parameters are resolved once, in :meth:`Chapter.start` (profile < ``moralkit run -p`` values <
non-None arguments; see :func:`moralkit.profiles.resolve_parameters`). Chapter-specific
parameters default to ``None`` in the cell, with their values in ``moralkit/profiles.yaml``.

The data, model-depth and extraction functions are :class:`Backends`, injected at start
(tests pass fakes; notebooks never do). The output folder is ``$MORALKIT_OUTPUT_DIR`` (set by
``moralkit book`` / ``moralkit run``) or ``./outputs/<chapter_id>``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import matplotlib.pyplot as plt
import torch

from moralkit import provenance as prov
from moralkit.activation_set import ActivationSet
from moralkit.activations import cached_activations
from moralkit.claims import load_claims
from moralkit.data import diagnostic_records
from moralkit.display import SavedPath, link_markdown, show_markdown, show_png
from moralkit.io import atomic_path, atomic_write_csv
from moralkit.layers import LayerSpec
from moralkit.models import LoadedModel, load_model, model_depth
from moralkit.notebooks import (
    FIGURE_DATA_KEY,
    OUTPUT_DIR_ENV,
    OUTPUT_MARKER,
    notebook_parameters,
    notebook_source_path,
    passed_parameters,
)
from moralkit.profiles import resolve_parameters
from moralkit.results import AnalysisResult, ClaimValue, claim_list

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from moralkit.records import MoralRecords

ConfigT = TypeVar("ConfigT")

#: the chapter parameters the extractor reads, passed as resolved (None: the extractor's own)
EXTRACTION_PARAMETERS = ("poolings", "template", "dtype", "device")


@dataclasses.dataclass(frozen=True)
class Backends:
    """What a chapter calls for records, a model's depth and activations.

    The defaults are the real functions; a test injects fakes with the same signatures
    (``Chapter.start(..., backends=Backends(extract=fake))``).
    """

    records: Callable[..., MoralRecords] = diagnostic_records
    depth: Callable[[str], int] = model_depth
    extract: Callable[..., ActivationSet] = cached_activations
    load: Callable[..., LoadedModel] = load_model


class Chapter:
    """One run of one chapter: resolved parameters, outputs and provenance (see module doc)."""

    def __init__(
        self,
        chapter_id: str,
        params: dict,
        output_dir: Path,
        backends: Backends | None = None,
    ) -> None:
        self.chapter_id = chapter_id
        self.params = params
        self.output_dir = Path(output_dir)
        self.backends = backends or Backends()
        self._t0 = time.perf_counter()
        self._records: dict[tuple, MoralRecords] = {}
        self._models: dict[str, dict] = {}
        self._data: dict[str, dict] = {}
        self._claims: dict[str, dict] = {}
        self._outputs: list[str] = []
        self._cache_before = prov.cache_files()  # what the run adds tells cold from warm
        self.started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        if torch.cuda.is_available():  # the peak shown is this chapter's
            torch.cuda.reset_peak_memory_stats()

    # ------------------------------------------------------------------ start
    @classmethod
    def start(
        cls,
        chapter_id: str,
        *,
        profile: str | None = None,
        backends: Backends | None = None,
        **params: Any,
    ) -> Chapter:
        """Resolve and validate parameters, make the output folder, start clock and tracker.

        Values: the profile's, then those ``moralkit run -p`` passed (``$MORALKIT_PARAMETERS``),
        then every non-None argument. Unknown names raise ``ValueError`` listing the valid
        ones; a bad value raises :class:`~moralkit.parameters.ParameterError` naming the
        parameter, the value and the expected type.
        """
        source = notebook_source_path(chapter_id, prov.REPO_ROOT)
        notebook_names = list(notebook_parameters(source)) if source is not None else []
        given = {**passed_parameters(), **{k: v for k, v in params.items() if v is not None}}
        resolved = resolve_parameters(chapter_id, profile, notebook_names, **given)
        output_dir = Path(os.environ.get(OUTPUT_DIR_ENV) or Path("outputs") / chapter_id)
        _make_output_dir(output_dir)
        return cls(chapter_id, resolved, output_dir, backends)

    @property
    def models(self) -> list[str]:
        """The resolved model names (``params["model"]``)."""
        return list(self.params["model"] or [])

    def layers(self, model_name: str, among: str | None = None) -> tuple[int, ...]:
        """The ``layers`` parameter resolved for ``model_name``'s depth (sorted, 0-based).

        ``among`` names a second layer parameter (e.g. ``"probe_layers"``) that narrows them:
        the layers both select, or all of ``layers`` when it is unset or they share none (so
        ``layers=0,6,12`` with ``probe_layers=every:3`` probes 0, 6 and 12 rather than failing).
        """
        if among is not None and among not in self.params:
            raise ValueError(f"among={among!r} is not a parameter of {self.chapter_id}")
        spec = LayerSpec.parse(self.params["layers"])
        narrower = LayerSpec.parse(self.params[among]) if among and self.params[among] else None
        return spec.narrow(narrower, self.backends.depth(model_name))

    def config(self, cls: type[ConfigT], **param_names: str) -> ConfigT:
        """A settings dataclass (e.g. ``StructuralConfig``) from the chapter's parameters.

        Each field takes the parameter of the same name, or the one ``param_names`` maps it to
        (``ch.config(StructuralConfig, n_permutations="structural_permutations")``), when that
        parameter is not None; other fields keep the dataclass' defaults.
        """
        values = {}
        for field in dataclasses.fields(cls):
            value = self.params.get(param_names.get(field.name, field.name))
            if value is not None:
                values[field.name] = value
        return cls(**values)

    # ------------------------------------------------------------------ inputs
    def records(
        self,
        ground_truth: str | None = None,
        sample_scale: float | None = None,
        seed: int | None = None,
    ) -> MoralRecords:
        """The diagnostic records for ``ground_truth`` (default: the chapter's parameters).

        (paper §1.5; book: Methods › Data, methods/data.md.) Cached per (ground truth, scale,
        seed); the data files' checksums go into the provenance.
        """
        gt = ground_truth or self.params["ground_truth"]
        scale = self.params["sample_scale"] if sample_scale is None else sample_scale
        seed = self.params["seed"] if seed is None else seed
        key = (gt, float(scale), int(seed))
        if key not in self._records:
            records = self.backends.records(gt, sample_scale=scale, seed=seed)
            self._records[key] = records
            info = dict(records.provenance)
            self._data[f"{gt}|{scale}|{seed}"] = {
                "ground_truth": gt,
                "sample_scale": scale,
                "seed": seed,
                "n_records": len(records),
                "checksums": dict(info.pop("files", None) or {}),
                "details": prov.to_jsonable(info),
            }
        return self._records[key]

    def activations(
        self, model_name: str, records: MoralRecords, **overrides: Any
    ) -> ActivationSet:
        """Cached pooled activations of ``model_name`` on ``records.texts``.

        (paper §2.1; book: Methods › Activations, methods/activations.md.) Reads
        :meth:`layers` and the chapter's ``poolings``, ``template``, ``dtype`` and ``device``;
        ``overrides`` (e.g. ``random_init=True``, ``system_prompt=...``, ``layers="0,-1"``) beat
        them. The provenance records the model's identity, the settings the extractor used,
        the cache key and hit, and the extraction time.
        """
        depth = self.backends.depth(model_name)
        options = self._extraction_options(depth, overrides)
        t0 = time.perf_counter()
        acts = self.backends.extract(model_name, records.texts, **options)
        self._record_model(model_name, len(records), acts, options, overrides, t0)
        # tables label rows by the name the chapter asked for, not the hub id behind it
        return dataclasses.replace(acts, model_id=model_name)

    def _extraction_options(self, depth: int, overrides: Mapping[str, Any]) -> dict[str, Any]:
        spec = LayerSpec.parse(overrides.get("layers", self.params["layers"]))
        options: dict[str, Any] = {
            name: self.params[name]
            for name in EXTRACTION_PARAMETERS
            if self.params.get(name) is not None
        }
        options.update(overrides)
        options["layers"] = spec.resolve(depth)
        if "poolings" in options:
            options["poolings"] = tuple(options["poolings"])
        return options

    def _record_model(
        self,
        model_name: str,
        n_texts: int,
        acts: ActivationSet,
        options: Mapping[str, Any],
        overrides: Mapping[str, Any],
        t0: float,
    ) -> None:
        elapsed = time.perf_counter() - t0
        meta = acts.meta
        variant = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        entry = {
            "name": model_name,
            "variant": variant,  # what the chapter asked beyond the profile (e.g. random_init)
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
            "extraction_s": round(elapsed, 2),
        }
        key = meta.get("cache_key") or f"{model_name}|{variant}|{n_texts}"
        previous = self._models.get(key)
        if previous:  # the same extraction again: keep the total time
            entry["extraction_s"] = round(previous["extraction_s"] + elapsed, 2)
            entry["cache_hit"] = bool(previous["cache_hit"]) and bool(entry["cache_hit"])
        self._models[key] = entry

    def load_model(self, model_name: str, **overrides: Any) -> LoadedModel:
        """Load a model for chapters that run it (steering, neurons, pruning), with its
        identity (id, revision, weights hash, dtype, device) in the provenance.

        Takes the chapter's ``dtype`` and ``device``; keyword arguments override them.
        """
        options = {"dtype": self.params.get("dtype"), "device": self.params.get("device")}
        options = {k: v for k, v in {**options, **overrides}.items() if v is not None}
        t0 = time.perf_counter()
        loaded = self.backends.load(model_name, **options)
        variant = ", ".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        self._models[f"loaded|{model_name}|{variant}"] = {
            "name": model_name,
            "variant": variant,
            "model_id": (loaded.spec.hf_id if loaded.spec else None) or loaded.name,
            "revision": loaded.revision,
            "weights_hash": loaded.weights_hash,
            "n_layers": loaded.n_layers,
            "dtype": loaded.dtype,
            "device": loaded.device,
            "load_s": round(time.perf_counter() - t0, 2),
        }
        return loaded

    # ------------------------------------------------------------------ outputs
    def save_table(self, table: pd.DataFrame, name: str, show: bool = True) -> Path:
        """Write ``table`` as ``<out>/tables/<name>.csv`` and show a download link."""
        path = atomic_write_csv(table, self.output_dir / "tables" / f"{_stem(name)}.csv")
        self._outputs.append(str(path))
        if show:
            show_markdown(f"Table data: {link_markdown(path)}")
        return SavedPath(path)

    def save_result(self, result: AnalysisResult, prefix: str | None = None) -> dict[str, Path]:
        """Save every table of an analysis result (``<prefix>_<table>.csv``), with links.

        Returns the paths by table name.
        """
        return {
            name: self.save_table(table, f"{prefix}_{name}" if prefix else name)
            for name, table in result.tables.items()
        }

    def save_figure(
        self,
        fig: Figure,
        name: str,
        data: pd.DataFrame | None = None,
        dpi: int = 110,
    ) -> Path:
        """Save ``fig`` as ``<out>/figures/<name>.png`` (+ ``<name>.csv`` from ``data``).

        Displays the saved PNG exactly once (the figure is closed so the inline backend does
        not show it again), then a link to the CSV.
        """
        png = self.output_dir / "figures" / f"{_stem(name)}.png"
        with atomic_path(png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        self._outputs.append(str(png))
        csv = None
        if data is not None:
            csv = atomic_write_csv(data, png.with_suffix(".csv"))
            self._outputs.append(str(csv))
        show_png(png)
        if csv is not None:
            # tagged so the book build can fold the link into the figure caption
            show_markdown(f"Figure data: {link_markdown(csv)}", metadata={FIGURE_DATA_KEY: True})
        return SavedPath(png)

    def record_claim(self, claim_id: str, value: Any, note: str = "", **extra: Any) -> None:
        """Record a measured value for a claim of moralkit/claims.yaml (``<out>/claims.json``).

        ``extra`` holds fields the claim's check may judge and per-model details.
        """
        known = load_claims()
        if claim_id not in known:
            raise ValueError(f"unknown claim id {claim_id!r}; known: {', '.join(known)}")
        # run settings go with the value: claims.yaml `requires` judges comparability on them
        self._claims[claim_id] = {
            "value": value,
            "note": note,
            "chapter": self.chapter_id,
            "profile": self.params["profile"],
            "ground_truth": self.params.get("ground_truth"),
            "sample_scale": self.params.get("sample_scale"),
            "model": self.models,
            **extra,
        }
        prov.write_json(self._claims, self.output_dir / "claims.json")

    def record_claims(self, claims: ClaimValue | Sequence[ClaimValue] | None) -> None:
        """Record what ``result.claim()`` returned: one :class:`ClaimValue`, a list, or None."""
        for claim in claim_list(claims):
            self.record_claim(claim.claim_id, claim.value, claim.note, **claim.fields())

    # ------------------------------------------------------------------ finish
    def provenance(self, status: str = "ok") -> dict:
        """Everything the provenance block shows, as a JSON-ready dict."""
        env = prov.environment_provenance(self.params.get("device"))
        return prov.to_jsonable(
            {
                "chapter": self.chapter_id,
                "profile": self.params["profile"],
                "status": status,
                "params": self.params,
                "models": list(self._models.values()),
                "data": list(self._data.values()),
                "claims": sorted(self._claims),
                "outputs": [
                    os.path.relpath(p, self.output_dir) for p in dict.fromkeys(self._outputs)
                ],
                **env,
                "started": self.started,
                "finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "wall_time_s": round(time.perf_counter() - self._t0, 2),
                "cache_writes": len(prov.cache_files() - self._cache_before),
                "peak_memory_mb": round(prov.peak_memory_mb(), 1),
                "peak_gpu_memory_mb": prov.peak_gpu_memory_mb(),
            }
        )

    def finish(self) -> None:
        """Show the provenance block and write ``<out>/provenance.json``.

        Returns nothing, so a cell ending in ``ch.finish()`` shows only the block; the dict is
        :meth:`provenance`.
        """
        record = self.provenance()
        prov.write_json(record, self.output_dir / "provenance.json")
        show_markdown("**Provenance of this page**\n\n" + prov.provenance_markdown(record))


def _make_output_dir(folder: Path) -> None:
    """Create the output folder; mark it as moralkit's only when moralkit created it."""
    fresh = not folder.exists() or not any(folder.iterdir())
    folder.mkdir(parents=True, exist_ok=True)
    if fresh:
        (folder / OUTPUT_MARKER).write_text("Written by moralkit.\n", encoding="utf-8")


def _stem(name: str) -> str:
    """A safe file stem: the name without a known extension, no path separators."""
    stem = Path(str(name)).name
    for ext in (".csv", ".png"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    if not stem or stem.startswith("."):
        raise ValueError(f"invalid output name {name!r}")
    return stem
