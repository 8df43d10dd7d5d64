""":class:`Chapter`: the one object a notebook talks to, delegating each job to its module.

Parameters (:mod:`~moralkit.chapter.parameters`), inputs (:mod:`~moralkit.chapter.inputs`:
records, layers, activations, models), outputs (:mod:`~moralkit.chapter.outputs`: tables,
figures, claims) and provenance (:mod:`~moralkit.chapter.provenance`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from moralkit.chapter import provenance as run_provenance
from moralkit.chapter.inputs import Backends, Inputs
from moralkit.chapter.outputs import Outputs, output_folder
from moralkit.chapter.parameters import settings, start_parameters
from moralkit.chapter.provenance import RunLog

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from moralkit.activation_set import ActivationSet
    from moralkit.models import LoadedModel
    from moralkit.records import MoralRecords
    from moralkit.results import AnalysisResult, ClaimValue

ConfigT = TypeVar("ConfigT")


class Chapter:
    """One run of one chapter: resolved parameters, inputs, outputs and provenance.

    See :mod:`moralkit.chapter` for a notebook's use.
    """

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
        self._log = RunLog()
        self._inputs = Inputs(chapter_id, params, self.backends, self._log)
        self._outputs = Outputs(chapter_id, params, self.output_dir, self._log)

    # ------------------------------------------------------------------ parameters
    @classmethod
    def start(
        cls,
        chapter_id: str,
        namespace: Mapping[str, Any] | None = None,
        *,
        profile: str | None = None,
        backends: Backends | None = None,
        **params: Any,
    ) -> Chapter:
        """Resolve and validate parameters, make the output folder, start clock and tracker.

        A notebook passes its namespace: ``Chapter.start("02_categorical_indifference",
        globals())`` reads every name of its ``parameters`` cell from it (papermill's injected
        values included; :mod:`moralkit.chapter.parameters`). Tests and scripts may pass
        ``profile=`` and parameters as keywords instead (they beat the namespace's values).
        Values: the profile's, then those ``moralkit run -p`` passed (``$MORALKIT_PARAMETERS``),
        then every non-None value given. Unknown names raise ``ValueError`` listing the valid
        ones; a bad value raises :class:`~moralkit.parameters.ParameterError` naming the
        parameter, the value and the expected type.
        """
        resolved = start_parameters(chapter_id, namespace, {"profile": profile, **params})
        return cls(chapter_id, resolved, output_folder(chapter_id), backends)

    @property
    def models(self) -> list[str]:
        """The resolved model names (``params["model"]``)."""
        return list(self.params["model"] or [])

    def config(self, cls: type[ConfigT], **param_names: str) -> ConfigT:
        """A settings dataclass from the chapter's parameters
        (:func:`moralkit.chapter.parameters.settings`; e.g. ``ch.config(StructuralConfig,
        n_permutations="structural_permutations")``)."""
        return settings(self.params, cls, **param_names)

    # ------------------------------------------------------------------ inputs
    def layers(
        self, model_name: str, which: str = "layers", among: str | None = None
    ) -> tuple[int, ...]:
        """The layer parameter ``which`` (default ``layers``; e.g. ``"steer_layers"``) resolved
        for ``model_name``, once; ``among`` narrows it by a second one
        (:meth:`moralkit.chapter.inputs.Inputs.layers`)."""
        return self._inputs.layers(model_name, which, among)

    def records(
        self,
        ground_truth: str | None = None,
        sample_scale: float | None = None,
        seed: int | None = None,
    ) -> MoralRecords:
        """The diagnostic records (:meth:`moralkit.chapter.inputs.Inputs.records`)."""
        return self._inputs.records(ground_truth, sample_scale, seed)

    def activations(
        self, model_name: str, records: MoralRecords, **overrides: Any
    ) -> ActivationSet:
        """Cached pooled activations at :meth:`layers`
        (:meth:`moralkit.chapter.inputs.Inputs.activations`)."""
        return self._inputs.activations(model_name, records, **overrides)

    def load_model(self, model_name: str, **overrides: Any) -> LoadedModel:
        """A model loaded with the chapter's dtype and device, in the provenance
        (:meth:`moralkit.chapter.inputs.Inputs.load_model`)."""
        return self._inputs.load_model(model_name, **overrides)

    # ------------------------------------------------------------------ outputs
    def save_table(self, table: pd.DataFrame, name: str, show: bool = True) -> Path:
        """``<out>/tables/<name>.csv`` (:meth:`moralkit.chapter.outputs.Outputs.save_table`)."""
        return self._outputs.save_table(table, name, show)

    def save_result(self, result: AnalysisResult, prefix: str | None = None) -> dict[str, Path]:
        """Every table of a result (:meth:`moralkit.chapter.outputs.Outputs.save_result`)."""
        return self._outputs.save_result(result, prefix)

    def save_figure(
        self, fig: Figure, name: str, data: pd.DataFrame | None = None, dpi: int = 110
    ) -> Path:
        """PNG + data CSV, shown once (:meth:`moralkit.chapter.outputs.Outputs.save_figure`)."""
        return self._outputs.save_figure(fig, name, data, dpi)

    def record_claim(self, claim_id: str, value: Any, note: str = "", **extra: Any) -> None:
        """One claim value (:meth:`moralkit.chapter.outputs.Outputs.record_claim`)."""
        self._outputs.record_claim(claim_id, value, note, **extra)

    def record_claims(self, claims: ClaimValue | Sequence[ClaimValue] | None) -> None:
        """What ``result.claim()`` returned
        (:meth:`moralkit.chapter.outputs.Outputs.record_claims`)."""
        self._outputs.record_claims(claims)

    # ------------------------------------------------------------------ provenance
    def provenance(self, status: str = "ok") -> dict:
        """Everything the provenance block shows, as a JSON-ready dict."""
        return run_provenance.record(
            self.chapter_id, self.params, self.output_dir, self._log, status
        )

    def finish(self) -> None:
        """Show the provenance block and write ``<out>/provenance.json``.

        Returns nothing, so a cell ending in ``ch.finish()`` shows only the block; the dict is
        :meth:`provenance`.
        """
        run_provenance.finish(self.provenance(), self.output_dir)
