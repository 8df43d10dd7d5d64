"""The Chapter API every notebook uses: parameters, data, activations, outputs, provenance.

A notebook's single ``parameters`` cell holds ``profile = "quick"`` and the chapter's parameters
set to ``None`` (None = take the profile's value). Then::

    from moralkit.chapter import Chapter
    ch = Chapter.start("02_categorical_indifference", profile=profile, model=model, layers=layers)
    p = ch.params                       # profile values overridden by non-None arguments
    records = ch.records()              # moralkit.data.diagnostic_records(...), provenance kept
    for name in p["model"]:             # always a list of model names
        acts = ch.activations(name, records)   # layers resolved for this model's depth
    ch.save_table(df, "centre_cosines")         # CSV in <out>/tables/ + a download link
    ch.save_figure(fig, "cosine_by_layer", data=df)  # PNG + CSV in <out>/figures/, shown once
    ch.record_claim("categorical_indifference", value, note="...")
    ch.finish()                         # provenance table + <out>/provenance.json

Chapter-specific parameters (``n_permutations`` ...) should also default to ``None`` in the
parameters cell, with their values in ``moralkit/profiles.yaml`` under ``chapters:``; a
non-None default in the cell would beat every profile.

``layers`` accepts ``"all"``, ``"every:K"``, ``"0,6,12"`` (negative = from the end) or a list of
ints; :meth:`Chapter.layers_for` resolves it for one model's depth.

The output folder is ``$MORALKIT_OUTPUT_DIR`` (set by ``moralkit book`` / ``moralkit run``) or
``./outputs/<chapter_id>``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from moralkit import provenance as prov
from moralkit.io import atomic_path, atomic_write_csv
from moralkit.profiles import resolve_layers, resolve_parameters

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from moralkit.activation_set import ActivationSet
    from moralkit.records import MoralRecords

ConfigT = TypeVar("ConfigT")

OUTPUT_DIR_ENV = "MORALKIT_OUTPUT_DIR"
NOTEBOOK_SOURCE_ENV = "MORALKIT_NOTEBOOK_SOURCE"
#: Output-metadata flag on the "Figure data: <csv>" link that follows a saved figure.
FIGURE_DATA_KEY = "moralkit_figure_data"


def show_markdown(text: str, metadata: dict | None = None) -> None:
    """Display Markdown in a notebook (printed outside IPython)."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text), metadata=metadata)


def link_markdown(path: Path, label: str | None = None) -> str:
    """A Markdown link to a local file, relative to the notebook's working directory.

    The book build turns a relative link to an existing non-page file into a download link
    (the file is copied into the site), and Jupyter opens it directly.
    """
    rel = os.path.relpath(Path(path).resolve(), Path.cwd().resolve())
    return f"[{label or Path(path).name}]({Path(rel).as_posix()})"


def notebook_source_path(chapter_id: str) -> Path | None:
    """The chapter's jupytext source: ``$MORALKIT_NOTEBOOK_SOURCE`` or notebooks/<id>.md."""
    env = os.environ.get(NOTEBOOK_SOURCE_ENV)
    if env and Path(env).exists() and Path(env).stem == chapter_id:
        return Path(env)
    candidate = prov.REPO_ROOT / "notebooks" / f"{chapter_id}.md"
    return candidate if candidate.exists() else None


class Chapter:
    """One run of one chapter: resolved parameters, outputs and provenance (see module doc)."""

    def __init__(self, chapter_id: str, params: dict, output_dir: Path) -> None:
        self.chapter_id = chapter_id
        self.params = params
        self.output_dir = Path(output_dir)
        self._t0 = time.perf_counter()
        self._records: dict[tuple, MoralRecords] = {}
        self._models: dict[str, dict] = {}
        self._data: dict[str, dict] = {}
        self._claims: dict[str, dict] = {}
        self._outputs: list[str] = []
        self.started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
        try:  # reset the CUDA peak so the figure is this chapter's
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        except ImportError:
            pass

    # ------------------------------------------------------------------ start
    @classmethod
    def start(cls, chapter_id: str, **params: Any) -> Chapter:
        """Resolve parameters (profile defaults < non-None arguments), start clock and tracker.

        Unknown parameter names raise ``ValueError`` listing the valid ones: the common
        parameters, the chapter extras declared in profiles.yaml and the notebook's
        ``parameters`` cell names.
        """
        profile = params.pop("profile", None)
        notebook_names: list[str] = []
        source = notebook_source_path(chapter_id)
        if source is not None:
            from moralkit.book import notebook_parameters

            notebook_names = list(notebook_parameters(source))
        resolved = resolve_parameters(chapter_id, profile, notebook_names, **params)
        output_dir = Path(os.environ.get(OUTPUT_DIR_ENV) or Path("outputs") / chapter_id)
        output_dir.mkdir(parents=True, exist_ok=True)
        return cls(chapter_id, resolved, output_dir)

    @property
    def models(self) -> list[str]:
        """The resolved model names (``params["model"]``)."""
        return list(self.params.get("model") or [])

    def layers_for(self, n_model_layers: int, among: str | None = None) -> list[int]:
        """The resolved ``layers`` parameter as indices for a model with this many layers.

        ``among`` names a second layer parameter (e.g. ``"probe_layers"``) that narrows the
        chapter's layers further: the result is the layers both select, or all of the
        chapter's layers when that parameter is unset or they share none (so ``layers=0,6,12``
        with ``probe_layers=every:3`` probes 0, 6 and 12 rather than failing).
        """
        layers = resolve_layers(self.params.get("layers"), n_model_layers)
        narrower = self.params.get(among) if among else None
        if narrower is None:
            return layers
        shared = [x for x in resolve_layers(narrower, n_model_layers) if x in layers]
        return shared or layers

    def config(self, cls: type[ConfigT], **param_names: str) -> ConfigT:
        """A settings dataclass (e.g. ``StructuralConfig``) from the chapter's parameters.

        Each field takes the parameter of the same name, or the one ``param_names`` maps it to
        (``ch.config(ProbeConfig, lr="learning_rate")``), when that parameter is not None;
        other fields keep their defaults.
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
        """The diagnostic records (paper-methods §1.5) for ``ground_truth`` (default: params).

        Cached per (ground truth, scale, seed); data checksums go into the provenance.
        """
        from moralkit.data import diagnostic_records

        gt = ground_truth or self.params["ground_truth"]
        scale = self.params["sample_scale"] if sample_scale is None else sample_scale
        seed = self.params["seed"] if seed is None else seed
        key = (gt, float(scale), int(seed))
        if key not in self._records:
            records = diagnostic_records(gt, sample_scale=scale, seed=seed)
            self._records[key] = records
            info = dict(records.provenance or {})
            checksums = info.pop("checksums", None) or info.pop("files", None) or {}
            self._data[f"{gt}|{scale}|{seed}"] = {
                "ground_truth": gt,
                "sample_scale": scale,
                "seed": seed,
                "n_records": len(records),
                "checksums": checksums if isinstance(checksums, Mapping) else {},
                "details": prov.to_jsonable(info),
            }
        return self._records[key]

    def model_depth(self, model_name: str) -> int:
        """Number of decoder layers of a model, from the registry (or by loading it)."""
        from moralkit import models

        try:
            return int(models.get_model_spec(model_name).n_layers)
        except (KeyError, ValueError, AttributeError, TypeError):
            loaded = models.load_model(model_name, dtype=self.params.get("dtype") or "float32")
            return int(loaded.n_layers)

    def activations(self, model_name: str, records: MoralRecords, **kwargs: Any) -> ActivationSet:
        """Cached pooled activations of ``model_name`` on ``records.texts`` (paper-methods §2.1).

        Uses the profile's template, dtype, poolings and ``layers_for(depth)``; keyword
        arguments override them. Model id, revision, weights hash, cache key/hit and the
        extraction wall time go into the provenance.
        """
        from moralkit.activations import cached_activations

        depth = self.model_depth(model_name)
        options: dict[str, Any] = {
            "layers": self.layers_for(depth),
            "poolings": tuple(
                self.params.get("poolings") or (self.params.get("pooling") or "mean",)
            ),
            "template": self.params.get("template") or "{action} is morally",
            "dtype": self.params.get("dtype") or "float32",
            "device": self.params.get("device"),
        }
        options.update(kwargs)
        accepted = inspect.signature(cached_activations).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            options = {k: v for k, v in options.items() if k in accepted}
        if options.get("device") is None:
            options.pop("device", None)
        t0 = time.perf_counter()
        acts = cached_activations(model_name, records.texts, **options)
        elapsed = time.perf_counter() - t0
        meta = dict(getattr(acts, "meta", {}) or {})
        variant = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
        entry = {
            "name": model_name,
            "variant": variant,  # what the chapter asked beyond the profile (e.g. random_init)
            "model_id": meta.get("model_id") or getattr(acts, "model_id", model_name),
            "revision": meta.get("revision"),
            "weights_hash": meta.get("weights_hash"),
            "n_layers": getattr(acts, "n_model_layers", depth),
            "layers": list(getattr(acts, "layers", options.get("layers") or [])),
            "n_texts": len(records),
            "cache_key": meta.get("cache_key"),
            "cache_hit": meta.get("cache_hit"),
            "extraction_s": round(elapsed, 2),
        }
        key = meta.get("cache_key") or f"{model_name}|{variant}|{len(records)}"
        previous = self._models.get(key)
        if previous:  # the same extraction again: keep the total time
            entry["extraction_s"] = round(previous["extraction_s"] + elapsed, 2)
            entry["cache_hit"] = bool(previous.get("cache_hit")) and bool(entry["cache_hit"])
        self._models[key] = entry
        # tables label rows by the name the chapter asked for, not the hub id behind it
        return dataclasses.replace(acts, model_id=model_name)

    # ------------------------------------------------------------------ outputs
    def save_table(self, table: pd.DataFrame, name: str, show: bool = True) -> Path:
        """Write ``table`` as ``<out>/tables/<name>.csv`` and show a download link."""
        path = atomic_write_csv(table, self.output_dir / "tables" / f"{_stem(name)}.csv")
        self._outputs.append(str(path))
        if show:
            show_markdown(f"Table data: {link_markdown(path)}")
        return SavedPath(path)

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
        import matplotlib.pyplot as plt

        stem = _stem(name)
        png = self.output_dir / "figures" / f"{stem}.png"
        with atomic_path(png, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
        plt.close(fig)
        self._outputs.append(str(png))
        csv = None
        if data is not None:
            csv = atomic_write_csv(data, png.with_suffix(".csv"))
            self._outputs.append(str(csv))
        _show_png(png)
        if csv is not None:
            # tagged so the book build can fold the link into the figure caption
            show_markdown(f"Figure data: {link_markdown(csv)}", metadata={FIGURE_DATA_KEY: True})
        return SavedPath(png)

    def record_claim(self, claim_id: str, value: Any, note: str = "", **extra: Any) -> None:
        """Record a measured value for a claim in moralkit/claims.yaml (``<out>/claims.json``)."""
        from moralkit.claims import load_claims

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


class SavedPath(type(Path())):  # type: ignore[misc]
    """A Path that displays as nothing in a notebook: the link was already shown."""

    def _ipython_display_(self) -> None:
        pass


def _stem(name: str) -> str:
    """A safe file stem: the name without a known extension, no path separators."""
    stem = Path(str(name)).name
    for ext in (".csv", ".png"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    if not stem or stem.startswith("."):
        raise ValueError(f"invalid output name {name!r}")
    return stem


def _show_png(path: Path) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:
        print(f"figure saved: {path}")
        return
    if get_ipython() is None:
        print(f"figure saved: {path}")
    else:
        display(Image(data=Path(path).read_bytes(), format="png"))
