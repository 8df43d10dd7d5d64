"""Run profiles (quick / tiny / paper) and the resolution of chapter parameters.

A chapter's parameters are: the profile's ``defaults``, then the profile's per-chapter values,
then every argument that is not None. Names are validated against the common parameters, the
chapter extras declared in ``profiles.yaml`` and the chapter notebook's ``parameters`` cell.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from moralkit.parameters import COMMON, ParameterError, coerce, split_names

PROFILES_PATH = Path(__file__).with_name("profiles.yaml")
DEFAULT_PROFILE = "quick"

#: Parameters every chapter understands (their types: moralkit.parameters.COMMON).
COMMON_PARAMETERS: tuple[str, ...] = tuple(COMMON)


@dataclass
class Profile:
    """One named run profile: common defaults plus per-chapter values."""

    name: str
    description: str = ""
    defaults: dict = field(default_factory=dict)
    chapters: dict = field(default_factory=dict)

    def chapter_values(self, chapter_id: str) -> dict:
        """The profile's values for one chapter: defaults, then matching ``chapters:`` entries.

        A ``chapters:`` key matches by full id or by the chapter number ("02").
        """
        values = dict(self.defaults)
        for key in sorted(self.chapters, key=len):  # number keys first, full ids win
            if chapter_matches(chapter_id, key):
                values.update(self.chapters[key] or {})
        return values


def chapter_matches(chapter_id: str, key: str) -> bool:
    """Whether a ``chapters:`` key ("02" or "02_categorical_indifference") names this chapter."""
    key = str(key)
    return chapter_id == key or chapter_id.split("_", 1)[0] == key


@lru_cache(maxsize=4)
def _read_profiles(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of profile names")
    return raw


def load_profiles(path: str | Path | None = None) -> dict[str, Profile]:
    """Read every profile from ``profiles.yaml`` (env ``MORALKIT_PROFILES`` overrides the path)."""
    path = Path(path or os.environ.get("MORALKIT_PROFILES") or PROFILES_PATH)
    if not path.exists():
        raise FileNotFoundError(f"profiles file not found: {path}")
    raw = copy.deepcopy(_read_profiles(str(path.resolve())))
    resolved: dict[str, Profile] = {}

    def build(name: str, seen: tuple[str, ...] = ()) -> Profile:
        if name in resolved:
            return resolved[name]
        if name not in raw:
            raise ValueError(f"unknown profile {name!r}; profiles: {sorted(raw)}")
        if name in seen:
            raise ValueError(f"profile {name!r} extends itself via {seen}")
        entry = raw[name] or {}
        unknown = set(entry) - {"extends", "description", "defaults", "chapters"}
        if unknown:
            raise ValueError(f"profile {name!r} has unknown keys {sorted(unknown)}")
        base = build(entry["extends"], (*seen, name)) if entry.get("extends") else None
        defaults = dict(base.defaults) if base else {}
        defaults.update(entry.get("defaults") or {})
        chapters = {k: dict(v or {}) for k, v in (base.chapters if base else {}).items()}
        for key, values in (entry.get("chapters") or {}).items():
            chapters.setdefault(str(key), {}).update(values or {})
        bad = set(defaults) - set(COMMON_PARAMETERS)
        if bad:
            raise ValueError(
                f"profile {name!r} defaults has unknown parameters {sorted(bad)};"
                f" common parameters are {list(COMMON_PARAMETERS)}"
            )
        for key, value in defaults.items():
            try:
                coerce(key, value)
            except ParameterError as exc:
                raise ValueError(f"profile {name!r} defaults: {exc}") from None
        resolved[name] = Profile(
            name, str(entry.get("description", "")).strip(), defaults, chapters
        )
        return resolved[name]

    for name in raw:
        build(name)
    return resolved


def get_profile(name: str | None = None) -> Profile:
    """One profile by name (default: env ``MORALKIT_PROFILE`` or ``quick``)."""
    name = name or os.environ.get("MORALKIT_PROFILE") or DEFAULT_PROFILE
    profiles = load_profiles()
    if name not in profiles:
        raise ValueError(f"unknown profile {name!r}; profiles: {sorted(profiles)}")
    return profiles[name]


def declared_chapter_values(chapter_id: str) -> dict[str, object]:
    """Chapter-specific parameters declared for this chapter in any profile, with a value.

    The value is the first non-None one found; its type is the parameter's type.
    """
    values: dict[str, object] = {}
    for profile in load_profiles().values():
        for key, entries in profile.chapters.items():
            if chapter_matches(chapter_id, key):
                for name, value in (entries or {}).items():
                    if values.get(name) is None:
                        values[name] = value
    return values


def valid_parameter_names(chapter_id: str, notebook_names: Iterable[str] = ()) -> list[str]:
    """Common parameters ∪ declared chapter extras ∪ the notebook's parameters-cell names."""
    names = set(COMMON_PARAMETERS) | set(declared_chapter_values(chapter_id)) | set(notebook_names)
    return sorted(names)


def check_parameter_names(
    chapter_id: str, names: Iterable[str], notebook_names: Iterable[str] = ()
) -> None:
    """Raise ``ValueError`` naming every unknown parameter and listing the valid ones."""
    valid = valid_parameter_names(chapter_id, notebook_names)
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown} for chapter {chapter_id!r}; valid: {', '.join(valid)}"
        )


def resolve_parameters(
    chapter_id: str,
    profile: str | None = None,
    notebook_names: Iterable[str] = (),
    **overrides: object,
) -> dict:
    """Profile values for ``chapter_id`` overridden by every non-None ``overrides`` entry.

    Every value is validated and converted once, here (:func:`moralkit.parameters.coerce`):
    ``model`` becomes a list of names, ``layers`` (and any ``*_layers``) a
    :class:`~moralkit.layers.LayerSpec`, numbers numbers; a bad value raises
    :class:`~moralkit.parameters.ParameterError` naming the parameter, value and expected type.
    """
    check_parameter_names(chapter_id, overrides, notebook_names)
    prof = get_profile(profile)
    params = prof.chapter_values(chapter_id)
    for name in valid_parameter_names(chapter_id, notebook_names):
        params.setdefault(name, None)
    params.update({k: v for k, v in overrides.items() if v is not None})
    params["profile"] = prof.name
    examples = declared_chapter_values(chapter_id)
    params = {name: coerce(name, value, examples.get(name)) for name, value in params.items()}
    pooling, poolings = params.get("pooling"), params.get("poolings")
    if pooling and poolings and pooling not in poolings:
        params["poolings"] = [*poolings, pooling]  # the pooling read must be extracted
    return params


def select_models(value: str | Sequence[str] | None, models: Sequence[str]) -> list[str]:
    """Which of a chapter's ``models`` a per-model option applies to.

    ``None`` -> the first model only; ``"all"`` -> every model; ``"none"`` -> no model;
    otherwise the listed names (a comma-separated string or a list).
    """
    if value is None:
        return list(models[:1])
    if isinstance(value, str) and value.strip().lower() in ("all", "none"):
        return list(models) if value.strip().lower() == "all" else []
    return split_names(value, "models")


def describe_profiles(profiles: Mapping[str, Profile] | None = None) -> str:
    """A human-readable listing of profiles (used by ``moralkit profiles``)."""
    profiles = profiles or load_profiles()
    lines = []
    for prof in profiles.values():
        lines.append(f"{prof.name}:")
        if prof.description:
            lines.append(f"  {prof.description}")
        for key, value in prof.defaults.items():
            lines.append(f"  {key}: {value}")
        for chapter, values in sorted(prof.chapters.items()):
            extras = ", ".join(f"{k}={v}" for k, v in values.items())
            lines.append(f"  chapter {chapter}: {extras}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
