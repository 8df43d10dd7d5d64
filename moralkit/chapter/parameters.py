"""Where a chapter's parameters enter: its notebook's namespace, ``moralkit run`` and the profile.

``Chapter.start("02_categorical_indifference", globals())`` reads the names of the notebook's
``parameters`` cell (:func:`moralkit.notebooks.notebook_source_path` finds the notebook: the file
``moralkit run``/``book`` executes, a copy in the kernel's folder, else the repository's) and
takes their values from the namespace it is given, so a value papermill injected (its
``injected-parameters`` cell runs after the parameters cell) is the value read. A cell name the
namespace lacks is an error (the parameters cell did not run). With no notebook to read (a
script), the names are the chapter's declared parameters the namespace defines.

Each value is then validated and typed once (:func:`moralkit.profiles.resolve_parameters`:
profile < ``moralkit run -p`` values < every non-None value given), and ``sae_preset`` becomes a
:class:`~moralkit.sae.config.SAEPreset`. Unknown names and bad values raise before any work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from moralkit import provenance as prov
from moralkit.notebooks import notebook_parameters, notebook_source_path, passed_parameters
from moralkit.parameters import ParameterError
from moralkit.profiles import resolve_parameters, valid_parameter_names
from moralkit.results import config_from_parameters
from moralkit.sae.config import PRESETS, SAEPreset

ConfigT = TypeVar("ConfigT")


def start_parameters(
    chapter_id: str,
    namespace: Mapping[str, Any] | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The chapter's resolved, typed parameters (see the module docstring).

    ``namespace`` is the notebook's (``globals()``); ``arguments`` are keyword values (tests,
    scripts), which beat the namespace's. None means "the profile's value" in both.
    """
    source = notebook_source_path(chapter_id, prov.REPO_ROOT)
    cell = list(notebook_parameters(source)) if source is not None else None
    given = dict(passed_parameters())
    if namespace is not None:
        given.update(_not_none(namespace_values(chapter_id, namespace, cell, source)))
    given.update(_not_none(arguments or {}))
    profile = given.pop("profile", None)
    params = resolve_parameters(chapter_id, profile, cell or (), **given)
    return typed_values(params)


def namespace_values(
    chapter_id: str,
    namespace: Mapping[str, Any],
    cell: Iterable[str] | None,
    source: Path | None = None,
) -> dict[str, Any]:
    """The values of the parameters-cell names ``cell`` in ``namespace``.

    ``cell=None`` (no notebook found): the chapter's valid parameter names that ``namespace``
    defines. A cell name missing from ``namespace`` raises ``NameError`` naming it.
    """
    if cell is None:
        names = [name for name in valid_parameter_names(chapter_id) if name in namespace]
    else:
        names = list(cell)
        missing = [name for name in names if name not in namespace]
        if missing:
            raise NameError(
                f"parameter(s) {missing} of the parameters cell of {source or chapter_id} are "
                "not defined in the namespace given to Chapter.start: run the parameters cell "
                "first"
            )
    return {name: namespace[name] for name in names}


def typed_values(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the values whose type lives above :mod:`moralkit.parameters` typed.

    ``sae_preset`` becomes a :class:`~moralkit.sae.config.SAEPreset` (a checked preset name).
    """
    value = params.get("sae_preset")
    if value is not None:
        try:
            params["sae_preset"] = SAEPreset(value)
        except ValueError:
            raise ParameterError(
                f"parameter sae_preset={value!r}: expected one of {', '.join(PRESETS)}"
            ) from None
    return params


def settings(params: Mapping[str, Any], cls: type[ConfigT], **param_names: str) -> ConfigT:
    """A settings dataclass (e.g. ``StructuralConfig``) from a chapter's parameters: the rule of
    :func:`moralkit.results.config_from_parameters`, which the chapters' recipes use too."""
    return config_from_parameters(cls, params, **param_names)


def _not_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}
