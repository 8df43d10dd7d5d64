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

PROFILES_PATH = Path(__file__).with_name("profiles.yaml")
DEFAULT_PROFILE = "quick"

#: Parameters every chapter understands (documented at the top of profiles.yaml).
COMMON_PARAMETERS: tuple[str, ...] = (
    "profile",
    "ground_truth",
    "model",
    "layers",
    "pooling",
    "poolings",
    "sample_scale",
    "seed",
    "dtype",
    "device",
    "template",
)


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


def declared_chapter_parameters(chapter_id: str) -> set[str]:
    """Chapter-specific parameter names declared for this chapter in any profile."""
    names: set[str] = set()
    for profile in load_profiles().values():
        for key, values in profile.chapters.items():
            if chapter_matches(chapter_id, key):
                names.update(values or {})
    return names


def valid_parameter_names(chapter_id: str, notebook_names: Iterable[str] = ()) -> list[str]:
    """Common parameters ∪ declared chapter extras ∪ the notebook's parameters-cell names."""
    names = set(COMMON_PARAMETERS) | declared_chapter_parameters(chapter_id) | set(notebook_names)
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

    ``model`` becomes a list of names and ``layers`` a normalised layer spec (see
    :func:`parse_layers`); both stay model-independent until :func:`resolve_layers`.
    """
    check_parameter_names(chapter_id, overrides, notebook_names)
    prof = get_profile(profile)
    params = prof.chapter_values(chapter_id)
    for name in valid_parameter_names(chapter_id, notebook_names):
        params.setdefault(name, None)
    params.update({k: v for k, v in overrides.items() if v is not None})
    params["profile"] = prof.name
    if params.get("model") is not None:
        params["model"] = parse_models(params["model"])
    if params.get("layers") is not None:
        params["layers"] = parse_layers(params["layers"])
    if isinstance(params.get("poolings"), str):
        params["poolings"] = [p.strip() for p in params["poolings"].split(",") if p.strip()]
    if (
        params.get("pooling")
        and params.get("poolings")
        and params["pooling"] not in params["poolings"]
    ):
        params["poolings"] = [*params["poolings"], params["pooling"]]
    return params


def parse_models(value: str | Sequence[str]) -> list[str]:
    """``"a,b"``, ``"a"`` or ``["a", "b"]`` -> ``["a", "b"]`` (order kept, blanks dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(x).strip() for x in items if str(x).strip()]
    if not names:
        raise ValueError(f"no model names in {value!r}")
    return names


def select_models(value: str | Sequence[str] | None, models: Sequence[str]) -> list[str]:
    """Which of a chapter's ``models`` a per-model option applies to.

    ``None`` -> the first model only; ``"all"`` -> every model; ``"none"`` -> no model;
    otherwise the listed names (as :func:`parse_models`).
    """
    if value is None:
        return list(models[:1])
    if isinstance(value, str) and value.strip().lower() in ("all", "none"):
        return list(models) if value.strip().lower() == "all" else []
    return parse_models(value)


def parse_layers(value: str | int | Sequence[int]) -> str | list[int]:
    """Normalise a layer spec without knowing the model's depth.

    Accepted: ``"all"``; ``"every:K"`` (0, K, 2K, ... and always the last layer); an int or a
    comma-separated list / list of ints, where negative ints count from the end (-1 = last).
    Returns ``"all"``, ``"every:K"`` or a list of ints.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid layers spec {value!r}")
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return "all"
        if text.startswith("every:"):
            step = text.split(":", 1)[1]
            if not step.isdigit() or int(step) < 1:
                raise ValueError(
                    f"invalid layers spec {value!r}: 'every:K' needs an integer K >= 1"
                )
            return f"every:{int(step)}"
        items: Sequence = [x for x in text.replace(" ", "").split(",") if x]
    else:
        items = list(value)
    try:
        layers = [int(x) for x in items]
    except (TypeError, ValueError):
        raise ValueError(
            f"invalid layers spec {value!r}: use 'all', 'every:K', '0,6,12' or a list of ints"
        ) from None
    if not layers:
        raise ValueError(f"invalid layers spec {value!r}: no layers")
    return layers


def resolve_layers(spec: str | Sequence[int] | None, n_layers: int) -> list[int]:
    """Turn a layer spec into sorted, unique 0-based layer indices for an ``n_layers`` model."""
    if n_layers < 1:
        raise ValueError(f"a model needs at least one layer, got n_layers={n_layers}")
    spec = "all" if spec is None else parse_layers(spec)
    if spec == "all":
        return list(range(n_layers))
    if isinstance(spec, str):  # every:K
        step = int(spec.split(":", 1)[1])
        return sorted(set(range(0, n_layers, step)) | {n_layers - 1})
    bad = [x for x in spec if not -n_layers <= x < n_layers]
    if bad:
        raise ValueError(
            f"layers {bad} out of range for a {n_layers}-layer model (valid: 0..{n_layers - 1},"
            f" or -1..-{n_layers} from the end)"
        )
    return sorted({x % n_layers for x in spec})


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
