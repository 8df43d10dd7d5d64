"""The chapter parameters' types: one declaration, one validation, one error shape.

Every value a chapter receives (from ``profiles.yaml``, from a notebook's ``parameters`` cell, or
from ``moralkit run -p NAME VALUE``) passes through :func:`coerce`, once, when the chapter's
parameters are resolved (:func:`moralkit.profiles.resolve_parameters`). Text from the command
line and Python values from a notebook are accepted alike; a bad value raises
:class:`ParameterError` naming the parameter, the value and the expected type, before any
kernel starts.

- The common parameters are declared in :data:`COMMON`.
- ``layers`` and every name ending in ``_layers`` are a :class:`~moralkit.layers.LayerSpec`.
- A chapter extra declared in ``profiles.yaml`` takes the type of its profile value
  (``n_permutations: 200`` -> a whole number).
- Other names (only in a notebook's ``parameters`` cell) take a Python literal, else the text.

A value whose type lives in a higher layer is typed where a chapter starts
(:func:`moralkit.chapter.parameters.typed_values`: ``sae_preset`` becomes an ``SAEPreset``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from moralkit.activation_set import POOLINGS
from moralkit.data.benchmarks import benchmark_files
from moralkit.data.ground_truth import GROUND_TRUTHS, ground_truth_parameter
from moralkit.layers import LayerSpec, LayerSpecError

__all__ = [
    "COMMON",
    "DTYPES",
    "POOLINGS",
    "Parameter",
    "ParameterError",
    "coerce",
    "coerce_like",
    "is_layer_parameter",
    "split_names",
    "to_cell_value",
]

#: dtypes the model loader accepts (moralkit.models.loading.DTYPES, which needs torch to
#: import; a test keeps the two equal)
DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
_DEVICE_RE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


class ParameterError(ValueError):
    """A parameter value of the wrong type or outside its choices."""


def _fail(name: str, value: Any, expected: str) -> ParameterError:
    return ParameterError(f"parameter {name}={value!r}: expected {expected}")


def split_names(value: Any, name: str) -> list[str]:
    """``"a,b"``, ``"a"`` or ``["a", "b"]`` -> ``["a", "b"]`` (order kept, blanks dropped)."""
    if isinstance(value, str):
        items: Sequence[Any] = value.split(",")
    elif isinstance(value, Sequence):
        items = value
    else:
        raise _fail(name, value, "a name, a comma-separated list of names or a list")
    names = [str(x).strip() for x in items if str(x).strip()]
    if not names:
        raise _fail(name, value, "at least one name")
    return names


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise _fail(name, value, "a whole number (int)")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _fail(name, value, "a whole number (int)")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise _fail(name, value, "a number (float)")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _fail(name, value, "a number (float)")


def _boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _fail(name, value, "true or false")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, value, "a non-empty text")
    return value


def _one_of(choices: Sequence[str]) -> Callable[[Any, str], str]:
    def check(value: Any, name: str) -> str:
        text = str(value).strip().lower() if isinstance(value, str) else value
        if text not in choices:
            raise _fail(name, value, f"one of {', '.join(choices)}")
        return text

    return check


def _names_among(choices: Sequence[str]) -> Callable[[Any, str], list[str]]:
    def check(value: Any, name: str) -> list[str]:
        names = split_names(value, name)
        bad = [x for x in names if x not in choices]
        if bad:
            raise _fail(name, value, f"names among {', '.join(choices)} (unknown: {bad})")
        return names

    return check


def _as_parameter_error(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """A check from another module whose ValueError becomes a :class:`ParameterError`."""

    def wrapped(value: Any, name: str) -> Any:
        try:
            return check(value, name)
        except ValueError as exc:
            raise ParameterError(str(exc)) from None

    return wrapped


# a registered name or a file (made absolute); chapter 01 shows several side by side
_ground_truth = _as_parameter_error(ground_truth_parameter)


def _fraction(value: Any, name: str) -> float:
    number = _number(value, name)
    if not 0 < number <= 1:
        raise _fail(name, value, "a fraction in (0, 1]")
    return number


def _seed(value: Any, name: str) -> int:
    seed = _integer(value, name)
    if seed < 0:
        raise _fail(name, value, "a whole number >= 0")
    return seed


def _device(value: Any, name: str) -> str:
    text = _text(value, name).strip().lower()
    if not _DEVICE_RE.match(text):
        raise _fail(name, value, "cpu, cuda, cuda:N or mps")
    return text


def _template(value: Any, name: str) -> str:
    text = _text(value, name)
    if "{action}" not in text:
        raise _fail(name, value, "a prompt template containing '{action}'")
    return text


def _layers(value: Any, name: str) -> LayerSpec:
    try:
        return LayerSpec.parse(value, name=name)
    except LayerSpecError as exc:
        raise ParameterError(f"parameter {exc}") from None


@dataclass(frozen=True)
class Parameter:
    """A common parameter: its meaning (shown by ``moralkit chapters -v``) and its check."""

    name: str
    help: str
    check: Callable[[Any, str], Any]


#: The parameters every chapter understands; profiles.yaml's ``defaults:`` set their values.
COMMON: dict[str, Parameter] = {
    p.name: p
    for p in (
        Parameter("profile", "run profile (quick | tiny | paper)", _text),
        Parameter(
            "ground_truth",
            f"one of {', '.join(GROUND_TRUTHS)}, or a CSV/TSV/JSONL/Parquet file",
            _ground_truth,
        ),
        Parameter("model", "registry names, hub ids or local paths (a list)", split_names),
        Parameter("layers", "'all', 'every:K' or '0,6,-1' (negative = from the end)", _layers),
        Parameter("pooling", "the pooling the diagnostics read", _one_of(POOLINGS)),
        Parameter("poolings", "the poolings extracted and cached", _names_among(POOLINGS)),
        Parameter("sample_scale", "fraction of the paper's diagnostic subset", _fraction),
        Parameter("seed", "sampling and training seed (whole number >= 0)", _seed),
        Parameter("dtype", f"model weights' dtype: {', '.join(DTYPES)}", _one_of(DTYPES)),
        Parameter("device", "cpu, cuda, cuda:N or mps", _device),
        Parameter("template", "the prompt template, with '{action}'", _template),
    )
}


#: Chapter parameters with a fixed set of values: the code's own constants (named beside each;
#: importing them here would load torch), kept equal by a test. ``judge``: chapter 08 takes
#: scripted | environment, chapter 10 also none.
CHOICES: dict[str, tuple[str, ...]] = {
    "protocol": ("fixed", "paper"),  # moralkit.evaluation.flames.PROTOCOLS
    "judge": ("none", "scripted", "environment"),  # flames.JUDGE_KINDS + strongreject.JUDGES
    "sae_preset": ("paper-run", "paper-code", "quick", "tiny"),  # moralkit.sae.config.PRESETS
    "decoding_setting": ("same", "paper"),  # moralkit.steering.generation.DECODING_SETTINGS
    "objective": ("code", "page"),  # moralkit.sae.config.OBJECTIVES
}
#: Chapter parameters that count items, prompts, resamples or tokens: whole numbers >= 0
COUNTS: tuple[str, ...] = (
    "n_flames_prompts",
    "n_moral_stories",
    "n_ethics",
    "n_fluency_texts",
    "n_bootstrap",
    "n_permutations",
    "max_new_tokens",
)


def _count(value: Any, name: str) -> int:
    number = _integer(value, name)
    if number < 0:
        raise _fail(name, value, "a whole number >= 0")
    return number


#: Chapter parameters naming a user's files (made absolute: the kernel runs elsewhere)
FILE_PARAMETERS: dict[str, Callable[[Any, str], Any]] = {
    "benchmarks": _as_parameter_error(benchmark_files)
}


def is_layer_parameter(name: str) -> bool:
    """``layers`` and every ``*_layers`` parameter are layer specs."""
    return name == "layers" or name.endswith("_layers")


def coerce_like(value: Any, example: Any, name: str) -> Any:
    """``value`` as the type of ``example`` (a chapter extra's profile value)."""
    if isinstance(example, bool):
        return _boolean(value, name)
    if isinstance(example, int):
        return _integer(value, name)
    if isinstance(example, float):
        return _number(value, name)
    if isinstance(example, list | tuple):
        items = value if isinstance(value, list | tuple) else split_names(value, name)
        return [coerce_like(x, example[0], name) for x in items] if example else list(items)
    if isinstance(example, str):
        return _text(value, name) if isinstance(value, str) else value
    return value


def coerce(name: str, value: Any, example: Any = None) -> Any:
    """Validate and convert one parameter value (None stays None: "use the profile's").

    ``example`` is a chapter extra's value in profiles.yaml, whose type the value must have.
    """
    if value is None:
        return None
    if is_layer_parameter(name):
        return _layers(value, name)
    if name in FILE_PARAMETERS:
        return FILE_PARAMETERS[name](value, name)
    if name in CHOICES:
        return _one_of(CHOICES[name])(value, name)
    if name in COUNTS:
        return _count(value, name)
    if name in COMMON:
        return COMMON[name].check(value, name)
    if example is not None:
        return coerce_like(value, example, name)
    if isinstance(value, str):
        return _literal(value)
    return value


def _literal(text: str) -> Any:
    """A notebook-only parameter given as text: a Python literal when it is one, else the text."""
    if text.strip().lower() in ("none", "null"):
        return None
    if text.strip().lower() in ("true", "false"):
        return text.strip().lower() == "true"
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text


def to_cell_value(value: Any) -> Any:
    """A resolved value as a literal papermill can write into a notebook cell."""
    if isinstance(value, LayerSpec):
        return value.to_jsonable()
    if isinstance(value, tuple):
        return list(value)
    return value
