"""One result shape for every analysis: ``XConfig`` -> ``XResult``.

Every analysis in moralkit (the four diagnostics, the across-model comparison, SAE re-diagnosis,
steering and judged evaluations, value neurons, pruning) follows one contract:

- a frozen ``XConfig`` dataclass holds its settings, with each default defined there once;
- ``x(acts, records, config)`` (or the analysis' own inputs) returns an ``XResult``;
- the result is an :class:`AnalysisResult`: named tidy tables (one row per observation, a
  ``model`` column where results are per model), :meth:`AnalysisResult.best` (the headline
  row per model), and :meth:`AnalysisResult.claim` (the :class:`ClaimValue` records the claims
  page needs, thresholds read from ``claims.yaml``, never from a notebook);
- results for several models combine with :meth:`AnalysisResult.concat`.

A chapter then only does ``ch.save_result(result)`` and ``ch.record_claims(result.claim())``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar

import pandas as pd

ConfigT = TypeVar("ConfigT")

__all__ = [
    "EVIDENCE_FIELDS",
    "HEADLINE_COLUMNS",
    "AnalysisResult",
    "ClaimValue",
    "Control",
    "Gate",
    "claim_settings",
    "config_from_parameters",
]

#: Columns of :meth:`AnalysisResult.headline`: one row per model x headline metric.
HEADLINE_COLUMNS: tuple[str, ...] = (
    "model",
    "diagnostic",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "layer",
    "relative_depth",
)


@dataclass(frozen=True)
class Gate:
    """A precondition of a claim's verdict (e.g. ``"sae_reconstruction"``: the SAE keeps at
    least 80% of the variance). A failed gate makes the verdict inconclusive, with ``detail``
    as the reason."""

    name: str
    passed: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": bool(self.passed), "detail": self.detail}


@dataclass(frozen=True)
class Control:
    """The positive control run beside a claim: the same diagnostic on a contrast every model
    encodes. ``detected`` False makes an indifference verdict inconclusive."""

    name: str
    value: float
    detected: bool
    ci_low: float | None = None
    ci_high: float | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "detected": bool(self.detected),
            "detail": self.detail,
        }


#: the optional evidence fields of a claims.json entry (their meaning: ClaimValue's docstring)
EVIDENCE_FIELDS: tuple[str, ...] = ("ci_low", "ci_high", "mde", "mde_detail", "gates", "control")


def _as_gate(gate: Gate | Mapping[str, Any]) -> Gate:
    if isinstance(gate, Gate):
        return gate
    return Gate(str(gate["name"]), bool(gate["passed"]), str(gate.get("detail", "")))


def _as_control(control: Control | Mapping[str, Any] | None) -> Control | None:
    if control is None or isinstance(control, Control):
        return control
    keys = ("ci_low", "ci_high", "detail")
    return Control(
        str(control["name"]),
        control["value"],
        bool(control["detected"]),
        **{k: control[k] for k in keys if k in control},
    )


@dataclass(frozen=True)
class ClaimValue:
    """A measured value for one claim of ``claims.yaml``, with what the claims page shows.

    ``value`` is the headline number or boolean; ``extra`` holds fields a claim's check may
    judge (``field:`` in claims.yaml) and per-model details. The evidence behind a verdict
    (book: Methods › Overview, how claims are judged):

    - ``ci_low`` / ``ci_high``: the interval of the judged quantity (the check's ``field``,
      else ``value``) at the claim's confidence level (95% unless its ``measure:`` says
      otherwise); interval-judged claims are never judged on a point estimate;
    - ``mde``: the minimum detectable effect at 80% power, in the units of the claim's margin,
      for the model and layer the verdict rests on; ``mde_detail`` says how it was obtained;
    - ``gates``: preconditions (:class:`Gate`); any failed gate makes the verdict inconclusive;
    - ``control``: the positive control (:class:`Control`); undetected, an indifference
      verdict is inconclusive.

    Gates and the control may be given as mappings with the same keys.
    """

    claim_id: str
    value: Any
    note: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)
    ci_low: float | None = None
    ci_high: float | None = None
    mde: float | None = None
    mde_detail: str = ""
    gates: Sequence[Gate] = ()
    control: Control | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "gates", tuple(_as_gate(g) for g in self.gates))
        object.__setattr__(self, "control", _as_control(self.control))
        if (self.ci_low is None) != (self.ci_high is None):
            raise ValueError(f"claim {self.claim_id!r}: give both ci_low and ci_high, or neither")

    def fields(self) -> dict[str, Any]:
        """The claims.json keys beside ``value`` and ``note``: ``extra`` plus the evidence
        fields that are set (typed fields win over keys of the same name in ``extra``)."""
        out = dict(self.extra)
        if self.ci_low is not None:
            out.update(ci_low=float(self.ci_low), ci_high=float(self.ci_high))
        if self.mde is not None:
            out["mde"] = float(self.mde)
        if self.mde_detail:
            out["mde_detail"] = self.mde_detail
        if self.gates:
            out["gates"] = [g.as_dict() for g in self.gates]
        if self.control is not None:
            out["control"] = self.control.as_dict()
        return out


@dataclass
class AnalysisResult:
    """Base of every ``XResult``: named tidy tables plus the analysis' config.

    Subclasses name their tables in ``TABLES`` (the first is the main one), say which table and
    column :meth:`best` maximises (``BEST_TABLE``, ``BEST_COLUMN``; ``BEST_ABS`` for magnitudes)
    or override it, and implement :meth:`claim` or say in ``NO_CLAIM`` why they record none.
    """

    tables: dict[str, pd.DataFrame]
    config: Any = None

    TABLES: ClassVar[tuple[str, ...]] = ()
    BEST_TABLE: ClassVar[str] = ""
    BEST_COLUMN: ClassVar[str] = ""
    BEST_ABS: ClassVar[bool] = False
    #: columns identifying one "series" whose best row is wanted (model, plus e.g. variant)
    BEST_GROUP: ClassVar[tuple[str, ...]] = ("model",)
    #: rows :meth:`best` considers (column -> required value), e.g. {"category": "overall"}
    BEST_WHERE: ClassVar[Mapping[str, Any]] = {}
    #: True when the lowest ``BEST_COLUMN`` is best (e.g. the categorical optimal layer)
    BEST_LOWER: ClassVar[bool] = False
    #: why this result records no claim, for results whose :meth:`claim` records none by
    #: design (a building block of another result, or no claim of the papers is about it)
    NO_CLAIM: ClassVar[str] = ""

    def __post_init__(self) -> None:
        missing = [name for name in self.TABLES if name not in self.tables]
        if missing:
            raise ValueError(f"{type(self).__name__} lacks table(s) {missing}")

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    @property
    def models(self) -> list[str]:
        """The models present in the main table, in order of appearance."""
        main = self.tables[self.TABLES[0]] if self.TABLES else next(iter(self.tables.values()))
        if "model" not in main.columns:
            return []
        return list(dict.fromkeys(main["model"].astype(str)))

    @classmethod
    def concat(cls, results: Iterable[Self]) -> Self:
        """One result from several (e.g. one per model): tables stacked, first config kept."""
        results = list(results)
        if not results:
            raise ValueError(f"{cls.__name__}.concat needs at least one result")
        names = list(dict.fromkeys(n for r in results for n in r.tables))
        tables = {
            n: pd.concat([r.tables[n] for r in results if n in r.tables], ignore_index=True)
            for n in names
        }
        return dataclasses.replace(results[0], tables=tables)

    def best(self) -> pd.DataFrame:
        """The headline row per series (``BEST_GROUP``): the maximum of ``BEST_COLUMN``."""
        if not self.BEST_TABLE:
            raise NotImplementedError(f"{type(self).__name__} defines no best()")
        table = self.tables[self.BEST_TABLE]
        for column, wanted in self.BEST_WHERE.items():
            table = table[table[column] == wanted]
        col = table[self.BEST_COLUMN]
        key = col.abs() if self.BEST_ABS else col
        key = -key if self.BEST_LOWER else key
        table = table.assign(_key=key).dropna(subset=["_key"])
        group = [g for g in self.BEST_GROUP if g in table.columns]
        if not group:
            return table.loc[[table["_key"].idxmax()]].drop(columns="_key")
        idx = table.groupby(group, sort=False)["_key"].idxmax()
        return table.loc[idx.values].drop(columns="_key").reset_index(drop=True)

    def claim(self) -> list[ClaimValue]:
        """The claims this result measures; a result that measures none says why in
        ``NO_CLAIM`` (every concrete result does one or the other)."""
        return []

    def headline(self) -> pd.DataFrame:
        """One row per model and headline metric, columns :data:`HEADLINE_COLUMNS`.

        The before/after comparisons (e.g. SAE re-diagnosis) stack these; analyses without a
        headline return an empty table.
        """
        return pd.DataFrame(columns=list(HEADLINE_COLUMNS))


def claim_settings(claim_id: str) -> dict[str, Any]:
    """The ``measure:`` settings of one claim in ``claims.yaml`` (e.g. a test's alpha).

    Thresholds that decide *how a value is measured* live there beside the check that judges
    it, never in a notebook. Raises ``KeyError`` naming the claim when it or its settings
    are missing.
    """
    from moralkit.claims import CLAIMS_PATH, _read

    entry = _read(str(CLAIMS_PATH.resolve())).get(claim_id)
    if entry is None:
        raise KeyError(f"claim {claim_id!r} is not in {CLAIMS_PATH}")
    settings = entry.get("measure")
    if not isinstance(settings, Mapping):
        raise KeyError(f"claim {claim_id!r} in {CLAIMS_PATH} has no `measure:` settings")
    return dict(settings)


def claim_list(claims: ClaimValue | Sequence[ClaimValue] | None) -> list[ClaimValue]:
    """Normalise ``claim()`` output: one value, a sequence or None -> a list."""
    if claims is None:
        return []
    if isinstance(claims, ClaimValue):
        return [claims]
    return list(claims)


def config_from_parameters(
    cls: type[ConfigT], params: Mapping[str, Any], **param_names: str
) -> ConfigT:
    """An ``XConfig`` from a chapter's parameters, so a chapter's recipe builds its own settings.

    Each field takes the parameter of the same name, or the one ``param_names`` maps it to
    (``n_prompts="n_flames_prompts"``), when that parameter is not None; other fields keep the
    dataclass' defaults (the rule of :meth:`moralkit.chapter.Chapter.config`).
    """
    values = {}
    for f in dataclasses.fields(cls):
        value = params.get(param_names.get(f.name, f.name))
        if value is not None:
            values[f.name] = value
    return cls(**values)


def gate_levels(claim_id: str, defaults: Mapping[str, float]) -> dict[str, float]:
    """The gate levels of a claim: its ``measure:`` settings in claims.yaml where they name
    them, else ``defaults`` (the levels stated in code before any run)."""
    try:
        settings = claim_settings(claim_id)
    except KeyError:
        return dict(defaults)
    return {k: type(v)(settings.get(k, v)) for k, v in defaults.items()}


def claim_cell(value: float, ci_low: float, ci_high: float, gates, **extra: float) -> dict:
    """One cell of a claim judged per model (``over: cells``): its value, interval, gates
    (:class:`moralkit.results.Gate`) and further numbers for the claims page."""
    return {
        "value": round(float(value), 4),
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "gates": [g.as_dict() for g in gates],
        **{k: float(v) for k, v in extra.items()},
    }


def merged_gates(cells: Mapping[str, dict]) -> list[Gate]:
    """One gate per name over the cells: passed when every cell's passed."""
    names = dict.fromkeys(g["name"] for c in cells.values() for g in c["gates"])
    return [
        Gate(
            name,
            all(g["passed"] for c in cells.values() for g in c["gates"] if g["name"] == name),
            "; ".join(
                f"{label}: {g['detail']}"
                for label, c in cells.items()
                for g in c["gates"]
                if g["name"] == name
            ),
        )
        for name in names
    ]
