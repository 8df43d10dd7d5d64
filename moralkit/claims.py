"""The paper's claims (claims.yaml) and the verdict on each measured value.

Chapters write ``claims.json`` through :meth:`moralkit.chapter.Chapter.record_claims` (the
:class:`~moralkit.results.ClaimValue` records an analysis result's ``claim()`` returns) or
:meth:`~moralkit.chapter.Chapter.record_claim`; the book's claims page is built from those files
by :func:`claims_table`.

Verdicts (book: Methods › Overview, "How a claim is judged"):

- **agrees** / **disagrees**: a number is judged by its *interval*, never by a point estimate
  alone: the check defines an accepted region (``approx``: target ± tolerance; ``at_most`` /
  ``at_least``: one side of a threshold; ``equivalence``: within a margin of no effect). The
  claim agrees when the whole interval lies inside the region, disagrees when it lies wholly
  outside. Counts and other exact quantities (``exact: true``) are judged on their value.
- **inconclusive**, always with its reason: a failed precondition (gate), no interval recorded,
  an interval straddling the region's edge, or, for a claim of no effect that would otherwise
  agree, a sample that could not detect an effect of the size that matters (MDE above the
  margin) or a positive control the diagnostic did not detect.
- **not checkable here**: the run's settings differ from ``requires``, the claim has no number
  to compare with (``op: none``), or the judged field was not recorded.
- **not measured**: no chapter recorded it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

CLAIMS_PATH = Path(__file__).with_name("claims.yaml")

AGREES = "agrees"
DISAGREES = "disagrees"
INCONCLUSIVE = "inconclusive"
NOT_CHECKABLE = "not checkable here"
NOT_RUN = "not measured"
VERDICTS = (AGREES, DISAGREES, INCONCLUSIVE, NOT_CHECKABLE, NOT_RUN)
#: the colour each verdict is shown in (claims page, landing page, chapter 11; Dark2 + grey)
VERDICT_COLOURS: dict[str, str] = {
    AGREES: "#1b9e77",
    DISAGREES: "#d95f02",
    INCONCLUSIVE: "#7570b3",
    NOT_CHECKABLE: "#d9d9d9",
    NOT_RUN: "#f2f2f2",
}

_OPS = ("approx", "at_most", "at_least", "equivalence", "is_true", "is_false", "none")
_SIDES = ("upper", "lower", "two_sided")
_EPS = 1e-12


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how a measured value is judged against it."""

    claim_id: str
    claim: str
    paper_value: str
    chapter: str
    check: dict = field(default_factory=dict)
    requires: dict = field(default_factory=dict)
    unmeasured: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of comparing one measurement with one claim.

    ``reason`` says why (always given for inconclusive); ``evidence`` is what the verdict
    rests on: the interval against the region, the MDE, the positive control, failed gates.
    """

    verdict: str
    reason: str = ""
    evidence: str = ""


@lru_cache(maxsize=4)
def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def _validate_check(claim_id: str, check: dict) -> None:
    op = check.get("op")
    if op not in _OPS:
        raise ValueError(f"claim {claim_id!r}: unknown check op {op!r}; use {_OPS}")
    if op in ("approx", "at_most", "at_least") and _as_number(check.get("target")) is None:
        raise ValueError(f"claim {claim_id!r}: op {op} needs a numeric `target`")
    if op == "equivalence":
        margin = _as_number(check.get("margin"))
        if margin is None or margin <= 0:
            raise ValueError(f"claim {claim_id!r}: equivalence needs a `margin` > 0")
        if check.get("side") not in _SIDES:
            raise ValueError(f"claim {claim_id!r}: equivalence `side` must be one of {_SIDES}")
        if not str(check.get("why", "")).strip():
            raise ValueError(f"claim {claim_id!r}: equivalence needs a `why` for its margin")
    if check.get("over") not in (None, "cells"):
        raise ValueError(f"claim {claim_id!r}: `over` must be `cells` when given")


def load_claims(path: str | Path | None = None) -> dict[str, Claim]:
    """All claims from claims.yaml, in file order; validates the checks."""
    raw = _read(str(Path(path or CLAIMS_PATH).resolve()))
    claims = {}
    for claim_id, entry in raw.items():
        check = dict(entry.get("check") or {"op": "none"})
        _validate_check(claim_id, check)
        claims[claim_id] = Claim(
            claim_id=claim_id,
            claim=" ".join(str(entry.get("claim", "")).split()),
            paper_value=str(entry.get("paper_value", "")),
            chapter=str(entry.get("chapter", "")),
            check=check,
            requires={k: list(v) for k, v in (entry.get("requires") or {}).items()},
            unmeasured=" ".join(str(entry.get("unmeasured", "")).split()),
        )
    return claims


def _as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _fmt(x: float) -> str:
    return "∞" if math.isinf(x) and x > 0 else "−∞" if math.isinf(x) else f"{x:.3g}"


def region(check: Mapping) -> tuple[float, float]:
    """The accepted region ``(low, high)`` of a numeric check (infinite for an open side)."""
    op = check["op"]
    if op == "equivalence":
        m = float(check["margin"])
        return {"upper": (-math.inf, m), "lower": (-m, math.inf), "two_sided": (-m, m)}[
            check["side"]
        ]
    target = float(check["target"])
    tol = float(check.get("tolerance", 0))
    if check.get("relative"):
        tol *= abs(target)
    return {
        "approx": (target - tol, target + tol),
        "at_most": (-math.inf, target + tol),
        "at_least": (target - tol, math.inf),
    }[op]


def _region_text(lo: float, hi: float) -> str:
    if math.isinf(lo):
        return f"x ≤ {_fmt(hi)}"
    if math.isinf(hi):
        return f"x ≥ {_fmt(lo)}"
    return f"{_fmt(lo)} ≤ x ≤ {_fmt(hi)}"


def failed_gates(measurement: Mapping) -> list[dict]:
    """The recorded gates that did not pass."""
    return [g for g in measurement.get("gates") or [] if not g.get("passed", False)]


def _requirement_unmet(claim: Claim, measurement: Mapping) -> str:
    for key, allowed in claim.requires.items():
        got = measurement.get(key)
        if not any(
            got == a or (_as_number(got) is not None and _as_number(got) == _as_number(a))
            for a in allowed
        ):
            wanted = " or ".join(str(a) for a in allowed)
            return f"needs {key} = {wanted} (this run: {got})"
    return ""


def judge_claim(claim: Claim, measurement: Mapping | None) -> Verdict:
    """Compare a recorded measurement (a claims.json entry) with the claim (module doc)."""
    if not measurement:
        return Verdict(NOT_RUN, claim.unmeasured or "no chapter recorded this claim in this build")
    unmet = _requirement_unmet(claim, measurement)
    if unmet:
        return Verdict(NOT_CHECKABLE, unmet)
    check = claim.check
    if check.get("op", "none") == "none":
        why = " ".join(str(check.get("why", "")).split())
        return Verdict(NOT_CHECKABLE, why or "the paper gives no number to compare with")
    if check.get("over") == "cells":
        return _judge_cells(check, measurement)
    return judge_check(check, measurement)


def judge_check(check: Mapping, measurement: Mapping) -> Verdict:
    """The verdict of one check on one measurement (requirements already met)."""
    failed = failed_gates(measurement)
    if failed:
        details = "; ".join(f"{g.get('name')}: {g.get('detail', '')}".strip() for g in failed)
        return Verdict(INCONCLUSIVE, f"precondition failed ({details})", f"failed: {details}")
    fname = check.get("field", "value")
    source = " (companion threshold)" if check.get("companion") else ""
    if check["op"] in ("is_true", "is_false"):
        value = measurement.get(fname)
        if value is None:
            return Verdict(NOT_CHECKABLE, f"the chapter did not record `{fname}`")
        if not isinstance(value, bool | int | float) or _as_number(value) is None:
            return Verdict(NOT_CHECKABLE, f"`{fname}` is not a truth value: {value!r}")
        ok = bool(value) if check["op"] == "is_true" else not bool(value)
        shown = f"`{fname}` is {bool(value)}"
        return Verdict(AGREES if ok else DISAGREES, shown + source, f"{shown} (a recorded fact)")
    return _judge_interval(check, measurement, fname, source)


def _judge_interval(check: Mapping, m: Mapping, fname: str, source: str) -> Verdict:
    lo, hi = region(check)
    rule = _region_text(lo, hi) + source
    ci_low, ci_high = _as_number(m.get("ci_low")), _as_number(m.get("ci_high"))
    if ci_low is None or ci_high is None:
        number = _as_number(m.get(fname))
        if m.get(fname) is None:
            return Verdict(NOT_CHECKABLE, f"the chapter did not record `{fname}`")
        if number is None:
            return Verdict(NOT_CHECKABLE, f"`{fname}` is not a number: {m[fname]!r}")
        if not check.get("exact"):
            return Verdict(
                INCONCLUSIVE,
                f"no interval recorded for `{fname}` (never judged on a point estimate)",
                f"{fname} = {_fmt(number)}, no interval; accepted: {rule}",
            )
        ok = lo - _EPS <= number <= hi + _EPS
        return Verdict(AGREES if ok else DISAGREES, rule, f"exact value {_fmt(number)}")
    if ci_low > ci_high + _EPS:
        return Verdict(NOT_CHECKABLE, f"interval [{_fmt(ci_low)}, {_fmt(ci_high)}] is reversed")
    interval = f"interval of {fname} [{_fmt(ci_low)}, {_fmt(ci_high)}]"
    evidence = "; ".join([interval, *_power_evidence(check, m)])
    if ci_high < lo - _EPS or ci_low > hi + _EPS:
        return Verdict(DISAGREES, f"{interval} lies outside {rule}", evidence)
    if not (lo - _EPS <= ci_low and ci_high <= hi + _EPS):
        return Verdict(INCONCLUSIVE, f"{interval} straddles the edge of {rule}", evidence)
    if check["op"] == "equivalence":
        blocked = _absence_blocked(check, m)
        if blocked:
            return Verdict(INCONCLUSIVE, blocked, evidence)
    return Verdict(AGREES, f"{interval} lies inside {rule}", evidence)


def _absence_blocked(check: Mapping, m: Mapping) -> str:
    """Why a claim of no effect cannot agree although its interval lies inside the margin."""
    mde, margin = _as_number(m.get("mde")), float(check["margin"])
    if mde is not None and mde > margin + _EPS:
        return (
            f"the sample could not detect an effect of the size that matters: "
            f"MDE {_fmt(mde)} > margin {_fmt(margin)}"
        )
    control = m.get("control")
    if isinstance(control, Mapping) and not control.get("detected", False):
        detail = control.get("detail") or f"value {control.get('value')}"
        return (
            f"the positive control ({control.get('name')}) was not detected: the diagnostic did "
            f"not find structure where structure exists ({detail})"
        )
    return ""


def _power_evidence(check: Mapping, m: Mapping) -> list[str]:
    out = []
    mde = _as_number(m.get("mde"))
    if mde is not None:
        vs = f" vs margin {_fmt(float(check['margin']))}" if "margin" in check else ""
        out.append(f"MDE {_fmt(mde)}{vs}")
    elif check.get("op") == "equivalence":
        out.append("no MDE recorded")
    control = m.get("control")
    if isinstance(control, Mapping):
        seen = "detected" if control.get("detected") else "NOT detected"
        value = _as_number(control.get("value"))
        shown = f" ({_fmt(value)})" if value is not None else ""
        out.append(f"control {control.get('name')}{shown} {seen}")
    return out


def _judge_cells(check: Mapping, measurement: Mapping) -> Verdict:
    """A claim over cells (e.g. every model × ground truth): each cell judged by the same check;
    disagrees if any cell does, agrees if every cell does, inconclusive otherwise."""
    cells = measurement.get("cells") or {}
    if not cells:
        return Verdict(NOT_CHECKABLE, "no cell was recorded")
    base = {k: v for k, v in check.items() if k != "over"}
    judged = {name: judge_check(base, cell) for name, cell in cells.items()}
    by = {v: [n for n, j in judged.items() if j.verdict == v] for v in VERDICTS}
    counts = ", ".join(f"{len(by[v])} {v}" for v in VERDICTS if by[v])
    evidence = f"{len(cells)} cells: {counts}"
    if by[DISAGREES]:
        why = "; ".join(f"{n}: {judged[n].reason}" for n in by[DISAGREES])
        return Verdict(DISAGREES, f"disagrees on {why}", evidence)
    if len(by[AGREES]) == len(cells):
        return Verdict(AGREES, f"agrees on every cell ({len(cells)})", evidence)
    open_ = [n for n in cells if n not in by[AGREES]]
    why = "; ".join(f"{n}: {judged[n].reason}" for n in open_)
    return Verdict(INCONCLUSIVE, f"not shown on {why}", evidence)


def read_measurements(claims_files: Iterable[str | Path]) -> dict[str, dict]:
    """Merge chapters' claims.json files into ``{claim_id: measurement}`` (later files win)."""
    merged: dict[str, dict] = {}
    for path in claims_files:
        path = Path(path)
        if path.exists():
            merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def format_value(value: object) -> str:
    """A short human-readable measured value."""
    if isinstance(value, bool) or value is None:
        return str(value)
    number = _as_number(value)
    if number is not None:
        return f"{int(number):,}" if number.is_integer() and abs(number) >= 100 else f"{number:.3g}"
    return str(value)


def claims_table(measurements: Mapping[str, Mapping], claims: Mapping[str, Claim] | None = None):
    """One row per claim: claim, paper value, chapter, measured value, profile, verdict, why,
    and ``evidence`` (the interval, MDE, control or failed precondition behind the verdict)."""
    import pandas as pd

    claims = claims or load_claims()
    rows = []
    for claim_id, claim in claims.items():
        measured = measurements.get(claim_id)
        verdict = judge_claim(claim, measured)
        rows.append(
            {
                "claim_id": claim_id,
                "claim": claim.claim,
                "paper_value": claim.paper_value,
                "chapter": (measured or {}).get("chapter") or claim.chapter,
                "measured": format_value(measured["value"]) if measured else "",
                "profile": (measured or {}).get("profile", ""),
                "verdict": verdict.verdict,
                "why": verdict.reason
                + (f"; {measured['note']}" if measured and measured.get("note") else ""),
                "evidence": verdict.evidence,
            }
        )
    return pd.DataFrame(rows)
