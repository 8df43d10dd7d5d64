"""The paper's claims (claims.yaml) and the verdict on each measured value.

Chapters write ``claims.json`` through :meth:`moralkit.chapter.Chapter.record_claims` (the
:class:`~moralkit.results.ClaimValue` records an analysis result's ``claim()`` returns) or
:meth:`~moralkit.chapter.Chapter.record_claim`; the book's claims page is built from those files
by :func:`claims_table`.
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
NOT_CHECKABLE = "not checkable here"
NOT_RUN = "not measured"

_OPS = ("approx", "at_most", "at_least", "is_true", "is_false", "none")


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
    """The outcome of comparing one measurement with one claim."""

    verdict: str
    reason: str = ""


@lru_cache(maxsize=4)
def _read(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def load_claims(path: str | Path | None = None) -> dict[str, Claim]:
    """All claims from claims.yaml, in file order; validates the check operators."""
    raw = _read(str(Path(path or CLAIMS_PATH).resolve()))
    claims = {}
    for claim_id, entry in raw.items():
        check = dict(entry.get("check") or {"op": "none"})
        if check.get("op") not in _OPS:
            raise ValueError(
                f"claim {claim_id!r}: unknown check op {check.get('op')!r}; use {_OPS}"
            )
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


def judge_claim(claim: Claim, measurement: Mapping | None) -> Verdict:
    """Compare a recorded measurement (a claims.json entry) with the claim.

    Returns agrees / disagrees (within the stated tolerance), "not checkable here" (run
    settings differ from ``requires``, no paper number, or the judged field is missing) or
    "not measured".
    """
    if not measurement:
        return Verdict(NOT_RUN, claim.unmeasured or "no chapter recorded this claim in this build")
    for key, allowed in claim.requires.items():
        got = measurement.get(key)
        if not any(
            got == a or (_as_number(got) is not None and _as_number(got) == _as_number(a))
            for a in allowed
        ):
            wanted = " or ".join(str(a) for a in allowed)
            return Verdict(NOT_CHECKABLE, f"needs {key} = {wanted} (this run: {got})")
    op = claim.check.get("op", "none")
    if op == "none":
        return Verdict(NOT_CHECKABLE, "the paper gives no number to compare with")
    fname = claim.check.get("field", "value")
    if fname not in measurement or measurement[fname] is None:
        return Verdict(NOT_CHECKABLE, f"the chapter did not record `{fname}`")
    value = measurement[fname]
    source = " (companion threshold)" if claim.check.get("companion") else ""
    if op in ("is_true", "is_false"):
        if not isinstance(value, bool | int | float) or _as_number(value) is None:
            return Verdict(NOT_CHECKABLE, f"`{fname}` is not a truth value: {value!r}")
        ok = bool(value) if op == "is_true" else not bool(value)
        return Verdict(AGREES if ok else DISAGREES, f"`{fname}` is {bool(value)}{source}")
    number = _as_number(value)
    if number is None:
        return Verdict(NOT_CHECKABLE, f"`{fname}` is not a number: {value!r}")
    target = float(claim.check["target"])
    tol = float(claim.check.get("tolerance", 0))
    if claim.check.get("relative"):
        tol *= abs(target)
    if op == "approx":
        ok = abs(number - target) <= tol + 1e-12
        rule = f"|x − {target:g}| ≤ {tol:g}"
    elif op == "at_most":
        ok = number <= target + tol + 1e-12
        rule = f"x ≤ {target + tol:g}"
    else:
        ok = number >= target - tol - 1e-12
        rule = f"x ≥ {target - tol:g}"
    return Verdict(AGREES if ok else DISAGREES, f"{rule}{source}")


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
    """One row per claim: claim, paper value, chapter, measured value, profile, verdict, why."""
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
            }
        )
    return pd.DataFrame(rows)
