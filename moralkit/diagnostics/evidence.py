"""What a diagnostic's claim carries beside its value: interval, MDE, gates and control.

(book: Methods › Power, controls and stability, methods/power.md; the verdicts are judged by
:mod:`moralkit.claims` from ``claims.yaml``.) An indifference claim is an equivalence claim: it
can agree only when the measured effect's interval lies inside the margin, the sample could
detect an effect of the margin's size (MDE at most the margin), every precondition (gate)
holds and the positive control was detected. This module turns a diagnostic's own numbers,
its :class:`~moralkit.diagnostics.power.PowerResult` and its
:class:`~moralkit.diagnostics.controls.ControlResult` into the fields ``claims.json`` records
(``ci_low``, ``ci_high``, ``mde``, ``mde_detail``, ``gates``, ``control``), for the model and
layer the verdict is based on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from moralkit.results import ClaimValue, Gate

if TYPE_CHECKING:
    from moralkit.diagnostics.controls import ControlResult
    from moralkit.diagnostics.power import PowerResult

#: The keys an entry of claims.json gains (the verdict interface).
EVIDENCE_KEYS: tuple[str, ...] = ("ci_low", "ci_high", "mde", "mde_detail", "gates", "control")
#: Columns of a result's ``verdict_table()``: per model, the judged effect at its verdict layer.
VERDICT_TABLE_COLUMNS: tuple[str, ...] = ("model", "layer", "metric", "value", "ci_low", "ci_high")


class VerdictLayers:
    """Mixin of the four diagnostic results: ``verdict_layers()`` from ``verdict_table()``."""

    def verdict_table(self) -> pd.DataFrame:  # pragma: no cover - every result defines it
        raise NotImplementedError

    def verdict_layers(self) -> dict[str, int]:
        """Each model's layer its verdict is based on."""
        t = self.verdict_table()
        return {str(m): int(x) for m, x in zip(t["model"], t["layer"], strict=True)}


def _number(value: Any, digits: int = 4) -> float | None:
    """A finite float rounded for claims.json, else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, digits) if math.isfinite(value) else None


@dataclass(frozen=True)
class Evidence:
    """The verdict fields of one claim (see the module docstring)."""

    ci_low: float | None = None
    ci_high: float | None = None
    mde: float | None = None
    mde_detail: str = ""
    gates: tuple[Gate, ...] = ()
    control: Mapping[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        """The claims.json keys (:data:`EVIDENCE_KEYS`), JSON-ready."""
        return {
            "ci_low": _number(self.ci_low),
            "ci_high": _number(self.ci_high),
            "mde": _number(self.mde),
            "mde_detail": self.mde_detail,
            "gates": [g.as_dict() for g in self.gates],
            "control": dict(self.control) if self.control is not None else None,
        }


def evidence_table(
    verdicts: pd.DataFrame,
    power: PowerResult | None = None,
    control: ControlResult | None = None,
    margin: float | None = None,
) -> pd.DataFrame:
    """Per model: the judged effect and its interval (a result's ``verdict_table()``), the
    MDE, the positive control and, when given, the claim's margin: what the chapter shows
    beside its verdict."""
    table = verdicts[list(VERDICT_TABLE_COLUMNS)].copy()
    if power is not None:
        mde = power["mde"][["model", "mde", "reached"]]
        table = table.merge(mde, on="model", how="left")
    if control is not None:
        c = control["control"][["model", "value", "ci_low", "ci_high", "detected"]]
        c = c.rename(
            columns={k: f"control_{k}" for k in ("value", "ci_low", "ci_high", "detected")}
        )
        table = table.merge(c, on="model", how="left")
    if margin is not None:
        table["margin"] = margin
    table["reading"] = [_reading(row, margin) for row in table.to_dict("records")]
    return table


def _reading(row: dict, margin: float | None) -> str:
    """One sentence per model: could the sample see the margin, and did the control show?"""
    parts = []
    mde = row.get("mde")
    if mde is not None and pd.notna(mde):
        bound = "" if row.get("reached", True) else "at least "
        if margin is None:
            parts.append(f"MDE {bound}{mde:.3g}")
        elif mde <= margin:
            parts.append(f"MDE {mde:.3g} <= margin {margin:g}: an effect of the margin's size "
                         "would have been detected")  # fmt: skip
        else:
            parts.append(f"MDE {bound}{mde:.3g} > margin {margin:g}: an effect of the margin's "
                         "size could go undetected")  # fmt: skip
    detected = row.get("control_detected")
    if detected is not None and pd.notna(detected):
        parts.append("control detected" if detected else "control NOT detected")
    return "; ".join(parts)


def claim_margin(claim_id: str) -> float | None:
    """The margin of a claim's equivalence check in ``claims.yaml`` (None when it has none)."""
    from moralkit.claims import load_claims

    claim = load_claims().get(claim_id)
    if claim is None:
        raise KeyError(f"claim {claim_id!r} is not in claims.yaml")
    margin = claim.check.get("margin")
    return float(margin) if margin is not None else None


def power_fields(
    power: PowerResult | None, model: str, diagnostic: str
) -> tuple[float | None, str, list[Gate]]:
    """``(mde, mde_detail, gates)`` of one model's power analysis; a ``power_reached`` gate
    fails when 80% power was never reached (the MDE is then only a lower bound)."""
    if power is None:
        return None, "no power analysis was run", []
    try:
        row = power.mde_row(model, diagnostic)
    except KeyError:
        return None, f"no power analysis for {model}", []
    gates = []
    if not bool(row["reached"]):
        gates.append(Gate("power_reached", False, str(row["detail"])))
    return _number(row["mde"]), str(row["detail"]), gates


def control_field(control: ControlResult | None, model: str) -> dict[str, Any] | None:
    """The interface's ``control`` dict for one model (None when no control was run)."""
    if control is None:
        return None
    try:
        return control.for_model(model)
    except KeyError:
        return None


def build_evidence(
    ci: tuple[Any, Any],
    model: str,
    diagnostic: str,
    power: PowerResult | None = None,
    control: ControlResult | None = None,
    gates: Sequence[Gate] = (),
) -> Evidence:
    """The :class:`Evidence` of a claim based on ``model``'s numbers."""
    mde, detail, power_gates = power_fields(power, model, diagnostic)
    return Evidence(
        ci_low=_number(ci[0]),
        ci_high=_number(ci[1]),
        mde=mde,
        mde_detail=detail,
        gates=tuple(gates) + tuple(power_gates),
        control=control_field(control, model),
    )


def model_evidence(evidence: Evidence) -> dict[str, Any]:
    """The per-model summary kept under ``per_model`` (the headline model's is the claim's)."""
    out = evidence.fields()
    out["gates"] = {g["name"]: g["passed"] for g in out["gates"]}
    if out["control"] is not None:
        out["control"] = {k: out["control"][k] for k in ("value", "detected")}
    return out


def claim_value(
    claim_id: str,
    value: Any,
    note: str,
    extra: Mapping[str, Any] | None = None,
    evidence: Evidence | None = None,
) -> ClaimValue:
    """A :class:`~moralkit.results.ClaimValue` carrying the evidence fields (an interval only
    when both ends are finite)."""
    fields = (evidence or Evidence()).fields()
    if fields["ci_low"] is None or fields["ci_high"] is None:
        fields["ci_low"] = fields["ci_high"] = None
    return ClaimValue(claim_id, value, note, dict(extra or {}), **fields)


__all__ = [
    "EVIDENCE_KEYS",
    "VERDICT_TABLE_COLUMNS",
    "VerdictLayers",
    "evidence_table",
    "Evidence",
    "Gate",
    "build_evidence",
    "claim_margin",
    "claim_value",
    "control_field",
    "model_evidence",
    "power_fields",
]
