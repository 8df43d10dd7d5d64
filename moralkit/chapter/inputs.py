"""What a chapter reads: records, layers, activations and models, each recorded for provenance.

(paper §1.5, §2.1; book: Methods › Data, methods/data.md; Methods › Activations,
methods/activations.md.) Layer parameters arrive as :class:`~moralkit.layers.LayerSpec` values
and are resolved here, once per model and parameter (:meth:`Inputs.layers`); the extractor
receives the resolved indices and parses nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from moralkit.activation_set import ActivationSet
from moralkit.activations import cached_activations
from moralkit.chapter.provenance import (
    EXTRACTION_PARAMETERS,
    RunLog,
    data_entry,
    extraction_entry,
    loaded_entry,
)
from moralkit.data import diagnostic_records
from moralkit.layers import LayerSpec, check_layer_indices
from moralkit.models import LoadedModel, load_model, model_depth
from moralkit.parameters import is_layer_parameter

if TYPE_CHECKING:
    from moralkit.records import MoralRecords


@dataclasses.dataclass(frozen=True)
class Backends:
    """What a chapter calls for records, a model's depth, activations and models.

    The defaults are the real functions; a test injects fakes with the same signatures
    (``Chapter.start(..., backends=Backends(extract=fake))``).
    """

    records: Callable[..., MoralRecords] = diagnostic_records
    depth: Callable[[str], int] = model_depth
    extract: Callable[..., ActivationSet] = cached_activations
    load: Callable[..., LoadedModel] = load_model


class Inputs:
    """A chapter's records, resolved layers, activations and loaded models (see module doc)."""

    def __init__(self, chapter_id: str, params: Mapping[str, Any], backends: Backends, log: RunLog):
        self.chapter_id = chapter_id
        self.params = params
        self.backends = backends
        self.log = log
        self._records: dict[tuple, MoralRecords] = {}
        self._depths: dict[str, int] = {}
        self._layers: dict[tuple, tuple[int, ...]] = {}

    def depth(self, model_name: str) -> int:
        """The model's number of layers (asked once per model)."""
        if model_name not in self._depths:
            self._depths[model_name] = int(self.backends.depth(model_name))
        return self._depths[model_name]

    def layer_spec(self, which: str) -> LayerSpec:
        """The layer parameter ``which`` as parsed at start (None, unset: every layer)."""
        if not is_layer_parameter(which) or which not in self.params:
            names = [n for n in self.params if is_layer_parameter(n)]
            raise ValueError(
                f"{which!r} is not a layer parameter of {self.chapter_id}; its layer "
                f"parameters: {', '.join(names)}"
            )
        spec = self.params[which]
        return LayerSpec() if spec is None else spec

    def layers(
        self, model_name: str, which: str = "layers", among: str | None = None
    ) -> tuple[int, ...]:
        """The layer parameter ``which`` resolved for ``model_name`` (sorted, 0-based), once.

        ``among`` names a second layer parameter that narrows them (e.g. ``"sae_layers"``):
        the layers both select, or all of ``which`` when it is unset or they share none (so
        ``layers=0,6,12`` with ``probe_layers=every:3`` probes 0, 6 and 12 rather than failing).
        """
        key = (model_name, which, among)
        if key not in self._layers:
            spec = self.layer_spec(which)
            narrower = self.layer_spec(among) if among else None  # unset: all, no narrowing
            depth = self.depth(model_name)
            self._layers[key] = spec.narrow(narrower, depth, which, among or which)
        return self._layers[key]

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
            self.log.data[f"{gt}|{scale}|{seed}"] = data_entry(gt, scale, seed, records)
        return self._records[key]

    def activations(
        self, model_name: str, records: MoralRecords, **overrides: Any
    ) -> ActivationSet:
        """Cached pooled activations of ``model_name`` on ``records.texts``.

        (paper §2.1; book: Methods › Activations, methods/activations.md.) Reads
        :meth:`layers` and the chapter's ``poolings``, ``template``, ``dtype`` and ``device``;
        ``overrides`` (e.g. ``random_init=True``, ``system_prompt=...``, ``layers=[8, 10]``)
        beat them. A ``layers`` override is resolved indices (e.g. from :meth:`layers`) or a
        :class:`LayerSpec`, never text. The provenance records the model's identity, the
        settings the extractor used, the cache key and hit, and the extraction time.
        """
        options = self._extraction_options(model_name, overrides)
        t0 = time.perf_counter()
        acts = self.backends.extract(model_name, records.texts, **options)
        entry = extraction_entry(model_name, len(records), acts, options, overrides)
        self.log.add_extraction(entry, time.perf_counter() - t0)
        # tables label rows by the name the chapter asked for, not the hub id behind it
        return dataclasses.replace(acts, model_id=model_name)

    def _extraction_options(self, model_name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {
            name: self.params[name]
            for name in EXTRACTION_PARAMETERS
            if self.params.get(name) is not None
        }
        options.update(overrides)
        options["layers"] = self._override_layers(model_name, overrides.get("layers"))
        if "poolings" in options:
            options["poolings"] = tuple(options["poolings"])
        return options

    def _override_layers(
        self, model_name: str, layers: LayerSpec | Sequence[int] | None
    ) -> tuple[int, ...]:
        if layers is None:
            return self.layers(model_name)
        if isinstance(layers, LayerSpec):
            return layers.resolve(self.depth(model_name))
        return check_layer_indices(layers, self.depth(model_name))

    def load_model(self, model_name: str, **overrides: Any) -> LoadedModel:
        """Load a model for chapters that run it (steering, neurons, pruning), with its
        identity (id, revision, weights hash, dtype, device) in the provenance.

        Takes the chapter's ``dtype`` and ``device``; keyword arguments override them.
        """
        options = {"dtype": self.params.get("dtype"), "device": self.params.get("device")}
        options = {k: v for k, v in {**options, **overrides}.items() if v is not None}
        t0 = time.perf_counter()
        loaded = self.backends.load(model_name, **options)
        entry = loaded_entry(model_name, loaded, overrides, time.perf_counter() - t0)
        self.log.models[f"loaded|{model_name}|{entry['variant']}"] = entry
        return loaded
