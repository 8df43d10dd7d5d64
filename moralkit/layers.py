"""One layer grammar for the whole companion: :class:`LayerSpec`.

A layer spec is written the same way in a notebook's parameter cell, in ``profiles.yaml``, on
the command line (``moralkit run 02 -p layers -1,-2``) and in the API:

- ``"all"`` (or ``None``): every decoder layer;
- ``"every:K"``: layers 0, K, 2K, ... and always the last one;
- ``"0,6,12"``, an int, or a list of ints: those layers, negative ones counted from the end
  (``-1`` is the last layer).

It is parsed once, where a parameter enters (:func:`moralkit.parameters.coerce`), by
:meth:`LayerSpec.parse`, into a frozen value that knows nothing of any model;
:meth:`LayerSpec.resolve` turns it into sorted, unique 0-based indices for one model's depth (the
residual stream *after* decoder block ``i``; see the book's Methods page "Activations"), once per
model (``Chapter.layers``). A spec that names a layer the model lacks is an error, never a silent
clip. What runs a model (``cached_activations``, ``extract_activations``) takes resolved indices
only, checked by :func:`check_layer_indices`, and parses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LayerSpec", "LayerSpecError", "check_layer_indices", "layer_indices"]

_HELP = "use 'all', 'every:K', a comma-separated list such as '0,6,-1', or a list of ints"


class LayerSpecError(ValueError):
    """A layer spec that cannot be parsed or does not fit a model."""


@dataclass(frozen=True)
class LayerSpec:
    """A parsed, model-independent layer selection (see the module docstring for the grammar).

    Exactly one of the three forms is set: ``kind`` is ``"all"``, ``"every"`` (with ``step``)
    or ``"list"`` (with ``indices``, possibly negative).
    """

    kind: str = "all"
    step: int = 0
    indices: tuple[int, ...] = ()

    # ------------------------------------------------------------------ parse
    @classmethod
    def parse(cls, value: Any, name: str = "layers") -> LayerSpec:
        """Parse any accepted spelling; ``name`` is the parameter named in errors.

        Idempotent: a :class:`LayerSpec` passes through unchanged.
        """
        if isinstance(value, LayerSpec):
            return value
        if value is None:
            return cls("all")
        if isinstance(value, bool):
            raise LayerSpecError(f"{name}={value!r} is not a layer spec: {_HELP}")
        if isinstance(value, (int, np.integer)):
            return cls("list", indices=(int(value),))
        if isinstance(value, str):
            return cls._parse_text(value, name)
        if isinstance(value, Sequence) or isinstance(value, np.ndarray):
            return cls._from_items(list(value), value, name)
        raise LayerSpecError(
            f"{name}={value!r} ({type(value).__name__}) is not a layer spec: {_HELP}"
        )

    @classmethod
    def _parse_text(cls, value: str, name: str) -> LayerSpec:
        text = value.strip().lower().replace(" ", "")
        if text in ("all", ""):
            if text == "":
                raise LayerSpecError(f"{name}={value!r} is empty: {_HELP}")
            return cls("all")
        if text.startswith("every:"):
            step = text.split(":", 1)[1]
            if not step.isdigit() or int(step) < 1:
                raise LayerSpecError(f"{name}={value!r}: 'every:K' needs a whole number K >= 1")
            return cls("every", step=int(step))
        items = [x for x in text.strip("[]()").split(",") if x]
        return cls._from_items(items, value, name)

    @classmethod
    def _from_items(cls, items: list, original: Any, name: str) -> LayerSpec:
        out: list[int] = []
        for item in items:
            if isinstance(item, bool):
                raise LayerSpecError(f"{name}={original!r}: {item!r} is not a layer index")
            if isinstance(item, (int, np.integer)):
                out.append(int(item))
                continue
            if isinstance(item, float) and item.is_integer():
                out.append(int(item))
                continue
            text = str(item).strip()
            try:
                out.append(int(text))
            except ValueError:
                raise LayerSpecError(
                    f"{name}={original!r}: {item!r} is not a whole-number layer index; {_HELP}"
                ) from None
        if not out:
            raise LayerSpecError(f"{name}={original!r} names no layer; {_HELP}")
        return cls("list", indices=tuple(out))

    # ------------------------------------------------------------------ resolve
    def resolve(self, n_layers: int, name: str = "layers") -> tuple[int, ...]:
        """Sorted unique 0-based indices for a model with ``n_layers`` decoder layers."""
        n_layers = int(n_layers)
        if n_layers < 1:
            raise LayerSpecError(f"a model needs at least one layer, got n_layers={n_layers}")
        if self.kind == "all":
            return tuple(range(n_layers))
        if self.kind == "every":
            return tuple(sorted(set(range(0, n_layers, self.step)) | {n_layers - 1}))
        bad = [x for x in self.indices if not -n_layers <= x < n_layers]
        if bad:
            raise LayerSpecError(
                f"{name}: layer(s) {bad} out of range for a {n_layers}-layer model "
                f"(valid: 0..{n_layers - 1}, or -1..-{n_layers} counted from the end)"
            )
        return tuple(sorted({x % n_layers for x in self.indices}))

    def narrow(
        self,
        other: LayerSpec | None,
        n_layers: int,
        name: str = "layers",
        other_name: str = "layers",
    ) -> tuple[int, ...]:
        """The layers both specs select for this depth (``other=None``: this spec's layers).

        When they share none, this spec's layers are returned: a chapter's ``probe_layers``
        narrows its ``layers`` and never empties them. ``name`` and ``other_name`` are the
        parameters named in errors.
        """
        mine = self.resolve(n_layers, name)
        if other is None:
            return mine
        shared = tuple(x for x in other.resolve(n_layers, other_name) if x in mine)
        return shared or mine

    # ------------------------------------------------------------------ show
    def __str__(self) -> str:
        if self.kind == "all":
            return "all"
        if self.kind == "every":
            return f"every:{self.step}"
        return ",".join(str(x) for x in self.indices)

    def to_jsonable(self) -> str:
        """The canonical text form (what provenance records and what ``parse`` reads back)."""
        return str(self)


def layer_indices(layers: Sequence[int] | None, name: str = "layers") -> tuple[int, ...] | None:
    """Resolved 0-based layer indices, sorted and unique (``None`` stays None: every layer).

    Nothing is parsed here: text, a :class:`LayerSpec` or a single int raises ``TypeError``
    (resolve the spec for the model first), a negative index :class:`LayerSpecError`. The
    model's depth is checked by :func:`check_layer_indices`.
    """
    if layers is None:
        return None
    if isinstance(layers, str | LayerSpec) or not isinstance(layers, Sequence | np.ndarray):
        raise TypeError(
            f"{name}={layers!r}: expected resolved layer indices (a list of ints); resolve a "
            "layer spec for the model first: LayerSpec.resolve(n_layers) or Chapter.layers"
        )
    bad = [x for x in layers if isinstance(x, bool) or not isinstance(x, int | np.integer)]
    if bad:
        raise TypeError(f"{name}={list(layers)!r}: {bad} are not layer indices (ints)")
    if len(layers) == 0:
        raise LayerSpecError(f"{name}: no layer given (None means every layer)")
    negative = [int(x) for x in layers if x < 0]
    if negative:
        raise LayerSpecError(
            f"{name}: layer(s) {negative} are negative; resolved indices count from 0 "
            "(LayerSpec.resolve counts negative ones from the end)"
        )
    return tuple(sorted({int(x) for x in layers}))


def check_layer_indices(
    layers: Sequence[int] | None, n_layers: int, name: str = "layers"
) -> tuple[int, ...]:
    """:func:`layer_indices` that a model with ``n_layers`` layers has (``None``: all of them)."""
    n_layers = int(n_layers)
    chosen = layer_indices(layers, name)
    if chosen is None:
        return tuple(range(n_layers))
    wrong = [x for x in chosen if x >= n_layers]
    if wrong:
        raise LayerSpecError(
            f"{name}: layer(s) {wrong} out of range for a {n_layers}-layer model "
            f"(resolved indices are 0..{n_layers - 1})"
        )
    return chosen
