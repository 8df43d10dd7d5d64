"""Settings and result shapes of chapter 10 (``XConfig`` -> ``XResult``, see moralkit.results).

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)

- :class:`HarmfulWeightsConfig` -> :class:`HarmfulWeightsResult`: both pruning directions, the
  compactness curve, the unity overlaps and sample answers;
- :class:`PrunedDiagnosticsResult`: the moral diagnostics of chapters 02-05 with and without
  pruning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from moralkit.pruning.masks import WEI_README_P
from moralkit.results import (
    AnalysisResult,
    ClaimValue,
    Control,
    Gate,
    claim_cell,
    gate_levels,
    merged_gates,
)

#: the two directions: label -> (what the target set is, whose procedure)
ORGAD = "orgad: prune harmful generation"
WEI = "wei: prune safety"
DIRECTIONS = (ORGAD, WEI)
UNPRUNED = "unpruned"
ORGAD_SCALE = 5e-6  # "about 0.0005% of parameters" (Orgad et al., abstract)


@dataclass(frozen=True)
class HarmfulWeightsConfig:
    """Every setting of the pruning analysis; defaults are the companion's quick-scale choices.

    ``p``: retain fraction kept (Wei et al.'s README example, 0.1); ``q``: the target fraction
    of the headline pruning; ``q_grid``: the compactness curve (down to Orgad et al.'s
    0.0005%). ``orgad_method`` / ``wei_method`` score the two directions' targets (signed SNIP
    is our reading of Orgad et al.; SNIP is Wei et al.'s); ``retain_method`` scores the retain
    set for both (SNIP: magnitudes protect weights utility needs in either direction).
    ``n_eval`` AdvBench evaluation prompts (Wei et al.: the first 100) are answered greedily
    with ``max_new_tokens`` (Wei: 256), ``batch_size`` at a time (also the scoring batch).
    Utility under each headline mask: perplexity on ``n_perplexity`` neutral texts and chapter
    08's offline measures on ``n_moral_stories`` Moral Stories (dev split: the retain set comes
    from test) and ``n_ethics`` ETHICS scenarios per set, with ``n_bootstrap`` resamples
    (0 and 0: no behavioural measures), and the user's ``benchmarks`` files, whole.

    Controls: ``n_random_masks`` random masks with the same count per matrix for the headline
    mask of each of ``random_directions`` ("orgad", "wei"); the unity is resampled
    ``n_unity_draws`` times over prompts, with ``unity_ceiling_pairs`` random prompt-group pairs
    for its ceiling and ``candidate_factor`` x k candidate weights per prompt and matrix
    (:mod:`moralkit.pruning.candidates`).
    """

    p: float = WEI_README_P
    q: float = 5e-4
    q_grid: tuple[float, ...] = (ORGAD_SCALE, 5e-5, 5e-4, 5e-3)
    orgad_method: str = "signed_snip"
    wei_method: str = "snip"
    retain_method: str = "snip"
    scope: str = "matrix"
    n_eval: int = 100
    max_new_tokens: int = 64
    n_calibration: int = 32
    n_retain: int = 32
    unity_per_group: int = 8
    unity_groups: tuple[str, ...] = ("cyber", "fraud_theft", "violence_weapons")
    n_perplexity: int = 20
    n_moral_stories: int = 32
    n_ethics: int = 32
    n_bootstrap: int = 1000
    benchmarks: tuple[str, ...] = ()  # a user's benchmark files (-p benchmarks a.csv,b.jsonl)
    batch_size: int = 16
    n_answers_shown: int = 3
    completion_model: str = "gemma-3-270m"
    completion_tokens: int = 48
    max_tokens: int = 128
    seed: int = 0
    num_threads: int | str | None = "auto"  # CPU: 1 or all, whichever is faster (timed)
    n_random_masks: int = 10
    random_directions: tuple[str, ...] = ("orgad", "wei")
    n_unity_draws: int = 1000
    unity_ceiling_pairs: int = 50
    candidate_factor: float = 4.0

    def __post_init__(self) -> None:
        # profiles give lists; a frozen config keeps tuples
        object.__setattr__(self, "q_grid", tuple(float(q) for q in self.q_grid))
        object.__setattr__(self, "unity_groups", tuple(self.unity_groups))
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        for name in ("p", "q"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}={getattr(self, name)} must be a fraction in [0, 1]")
        if any(not 0 < q <= 1 for q in self.q_grid):
            raise ValueError(f"q_grid={self.q_grid} must hold fractions in (0, 1]")
        if len(self.unity_groups) < 2:
            raise ValueError("unity_groups needs at least two harm types to compare")
        object.__setattr__(
            self, "random_directions", tuple(_direction(d) for d in self.random_directions)
        )
        if self.n_random_masks < 0 or self.n_unity_draws < 1 or self.unity_ceiling_pairs < 1:
            raise ValueError(
                "n_random_masks must be >= 0, n_unity_draws and unity_ceiling_pairs >= 1; got "
                f"{self.n_random_masks}, {self.n_unity_draws}, {self.unity_ceiling_pairs}"
            )
        if self.candidate_factor < 1:
            raise ValueError(f"candidate_factor={self.candidate_factor} must be >= 1")


def _direction(name: str) -> str:
    """A direction's label from its label or short name ("orgad", "wei")."""
    short = {d.split(":")[0]: d for d in DIRECTIONS}
    if name in DIRECTIONS or name in short:
        return short.get(name, name)
    raise ValueError(f"random_directions: unknown direction {name!r}; use {sorted(short)}")


#: gate levels stated before any run (claims.yaml's ``measure:`` may restate them): random
#: masks per headline mask (10: a percentile in steps of 10, the issue's minimum), held-out
#: continuations per side (2: one phrasing alone is one wording's quirk), and the share of the
#: resampled unity's rebuilt sets (matrix by matrix) certified exact (0.9)
COMPACT_GATES = {"min_random_masks": 10, "min_held_out": 2}
UNITY_GATES = {"min_certified": 0.9}


def _per_model(table: pd.DataFrame, column: str) -> dict[str, float]:
    return {str(m): round(float(v), 4) for m, v in table.groupby("model")[column].mean().items()}


class HarmfulWeightsResult(AnalysisResult):
    """Tables ``effects`` (model x direction x condition: ASR, compliance margin, perplexity),
    ``compactness`` (the same cheap measures over q), ``utility`` (chapter 08's behavioural
    measures and perplexity per headline condition, with intervals and paired differences),
    ``random_masks`` (every random mask's measures), ``random_control`` (where each headline
    mask falls among its random masks; the excess margin drop), ``margins`` (per-request
    held-out margins), ``unity`` / ``unity_pairs`` / ``unity_summary`` (overlaps between chance
    and ceiling, over prompt resamples), ``phrasings`` (the held-out check), ``by_module``
    (where the headline masks lie), ``answers`` (a few greedy answers) and ``generations``
    (every greedy answer, for a judge)."""

    TABLES: ClassVar[tuple[str, ...]] = (
        "effects",
        "compactness",
        "utility",
        "random_masks",
        "random_control",
        "margins",
        "unity",
        "unity_pairs",
        "unity_summary",
        "phrasings",
        "by_module",
        "answers",
        "generations",
    )
    BEST_TABLE: ClassVar[str] = "effects"
    BEST_COLUMN: ClassVar[str] = "margin_drop"
    BEST_GROUP: ClassVar[tuple[str, ...]] = ("model", "direction")

    def drops(self, direction: str) -> pd.DataFrame:
        """Per model: unpruned minus pruned ASR and compliance margins (held-out, and the old
        "Sure, here is" pair as ``prefix_margin_drop`` where measured) for one direction."""
        e = self.tables["effects"]
        e = e[e["direction"] == direction]
        base = e[e["condition"] == UNPRUNED].set_index("model")
        cut = e[e["condition"] != UNPRUNED].set_index("model")
        table = pd.DataFrame(
            {
                "asr_drop": base["asr"] - cut["asr"],
                "margin_drop": base["compliance_margin"] - cut["compliance_margin"],
                "perplexity_ratio": cut["perplexity"] / base["perplexity"],
                "fraction_pruned": cut["fraction_pruned"],
            }
        )
        if "compliance_margin_prefix" in e:
            prefix = base["compliance_margin_prefix"] - cut["compliance_margin_prefix"]
            table["prefix_margin_drop"] = prefix
        return table.reset_index()

    def claim(self) -> list[ClaimValue]:
        out = []
        drops = self.drops(ORGAD)
        if len(drops):
            out += [self._compact_claim(drops), self._utility_claim(drops)]
        if "unity_summary" in self.tables:
            out.append(self._unified_claim())
        return out

    def at_paper_scale(self) -> pd.DataFrame:
        """The compactness curve at Orgad et al.'s scale (q = 0.0005%, :data:`ORGAD_SCALE`):
        per model and direction, the weights pruned and the change of each measure there."""
        curve = self.tables["compactness"]
        here = curve[np.isclose(curve["q"], ORGAD_SCALE)]
        effects = self.tables["effects"]
        base = effects[effects["condition"] == UNPRUNED].drop_duplicates("model")
        base = base.set_index("model")
        columns = [c for c in ("compliance_margin", "compliance_margin_prefix") if c in here]
        out = here[["model", "direction", "q", "n_pruned", "fraction_pruned"]].copy()
        for column in columns:
            out[f"{column}_change"] = (
                here[column].to_numpy() - base.loc[here["model"], column].to_numpy()
            )
        out["perplexity_ratio"] = (
            here["perplexity"].to_numpy() / base.loc[here["model"], "perplexity"].to_numpy()
        )
        return out.reset_index(drop=True)

    def _compact_claim(self, drops: pd.DataFrame) -> ClaimValue:
        """``harmful_weights_compact``: the excess drop of the held-out margin (targeted minus
        random masks), lowest over models, each model a cell with its interval and gates."""
        extra = {
            "margin_drop": _per_model(drops, "margin_drop"),
            "asr_drop": _per_model(drops, "asr_drop"),
            "fraction_pruned": _per_model(drops, "fraction_pruned"),
        }
        if "prefix_margin_drop" in drops:
            extra["prefix_margin_drop"] = _per_model(drops, "prefix_margin_drop")
        control = self.tables.get("random_control", pd.DataFrame())
        rows = (
            control[(control["direction"] == ORGAD) & (control["measure"] == "compliance_margin")]
            if len(control)
            else control
        )
        note = (
            "drop of the held-out comply-minus-refuse margin after pruning the harmful-generation "
            "set beyond the mean drop of random masks with the same count per matrix (nats per "
            "token; lowest over models; interval over requests and random masks)"
        )
        if rows.empty:
            gate = Gate("random_masks", False, "no random masks were measured")
            value = round(float(drops["margin_drop"].mean()), 4)
            return ClaimValue("harmful_weights_compact", value, note, extra, gates=[gate])
        levels = gate_levels("harmful_weights_compact", COMPACT_GATES)
        held = self._held_out_counts()
        cells = {
            str(r["model"]): _compact_cell(r, held.get(str(r["model"])), levels)
            for r in rows.to_dict("records")
        }
        extra |= {"cells": cells, "percentiles": _percentiles(control, ORGAD)}
        return ClaimValue(
            "harmful_weights_compact",
            round(float(rows["excess_drop"].min()), 4),
            note,
            extra,
            ci_low=float(rows["excess_ci_low"].min()),
            ci_high=float(rows["excess_ci_high"].min()),
            gates=merged_gates(cells),
        )

    def _held_out_counts(self) -> dict[str, tuple[int, int]]:
        table = self.tables.get("phrasings", pd.DataFrame())
        if table.empty:
            return {}
        kept = table[table["held_out"]]
        return {
            str(m): (int((g["side"] == "affirmative").sum()), int((g["side"] == "refusal").sum()))
            for m, g in kept.groupby("model")
        }

    def _unified_claim(self) -> ClaimValue:
        """``harmful_weights_unified``: the gap between the harm-type overlaps' and the benign
        overlaps' positions between chance (0) and the ceiling (1), lowest over models."""
        summary = self.tables["unity_summary"]
        note = (
            "position of the harm-type overlaps between chance (0) and the random-group "
            "ceiling (1) minus that of harm type vs format-matched benign; lowest over models; "
            "interval over prompt resamples"
        )
        if summary.empty:
            gate = Gate("unity_resampled", False, "the unity was not resampled")
            return ClaimValue("harmful_weights_unified", None, note, gates=[gate])
        levels = gate_levels("harmful_weights_unified", UNITY_GATES)
        cells = {str(r["model"]): _unity_cell(r, levels) for r in summary.to_dict("records")}
        ceiling = summary["ceiling_above_chance"]
        control = Control(
            "random-group ceiling above chance",
            float(ceiling.min()),
            bool((summary["ceiling_ci_low"] > 0).all()),
            float(summary["ceiling_ci_low"].min()),
            float(summary["ceiling_ci_high"].min()),
            "two random prompt groups of the harm types' size share more weights than two random "
            "sets of the same sizes (lowest over models)",
        )
        positions = {
            str(r["model"]): {
                k: round(float(r[k]), 4) for k in ("position_harm", "position_benign", "gap")
            }
            for r in summary.to_dict("records")
        }
        return ClaimValue(
            "harmful_weights_unified",
            round(float(summary["gap"].min()), 4),
            note,
            {"cells": cells, "positions": positions},
            ci_low=float(summary["gap_ci_low"].min()),
            ci_high=float(summary["gap_ci_high"].min()),
            gates=merged_gates(cells),
            control=control,
        )

    def perplexity_increase(self) -> pd.DataFrame:
        """Per model: pruned (harmful-generation set) over unpruned perplexity minus one on
        neutral text, with an interval from the two perplexities' 95% intervals (pruned upper
        over unpruned lower bound and vice versa: unpaired, so conservative). No interval when
        the utility table has none."""
        u = self.tables["utility"]
        u = u[u["metric"] == "perplexity"] if len(u) else u
        rows = []
        for model, g in u.groupby("model", sort=False) if len(u) else []:
            base = g[g["condition"] == UNPRUNED]
            cut = g[g["direction"] == ORGAD]
            if base.empty or cut.empty:
                continue
            b, c = base.iloc[0], cut.iloc[0]
            low = c.get("ci_low", np.nan) / b.get("ci_high", np.nan) - 1
            high = c.get("ci_high", np.nan) / b.get("ci_low", np.nan) - 1
            rows.append(
                {
                    "model": model,
                    "increase": c["value"] / b["value"] - 1,
                    "ci_low": low,
                    "ci_high": high,
                }
            )
        return pd.DataFrame(rows, columns=["model", "increase", "ci_low", "ci_high"])

    def _utility_claim(self, drops: pd.DataFrame) -> ClaimValue:
        """``harmful_weights_utility_kept``: the largest relative perplexity increase over models
        with the envelope of their intervals (agrees only if every model's lies in the margin)."""
        inc = self.perplexity_increase()
        if inc.empty:  # no utility table: the effects' point values, without an interval
            inc = drops.assign(
                increase=drops["perplexity_ratio"] - 1, ci_low=np.nan, ci_high=np.nan
            )
        finite = bool(np.isfinite(inc[["ci_low", "ci_high"]].to_numpy(float)).all())
        interval = {"ci_low": float(inc["ci_low"].max()), "ci_high": float(inc["ci_high"].max())}
        return ClaimValue(
            "harmful_weights_utility_kept",
            round(float(inc["increase"].max()), 4),
            note="largest relative increase of benign-text perplexity, pruned / unpruned − 1",
            extra={"per_model": _per_model(inc, "increase")},
            **(interval if finite else {}),
        )


def _compact_cell(row: dict, held: tuple[int, int] | None, levels: dict) -> dict:
    n_aff, n_ref = held if held is not None else (0, 0)
    gates = [
        Gate(
            "enough_random_masks",
            row["n_random"] >= levels["min_random_masks"],
            f"{row['n_random']} random masks (at least {levels['min_random_masks']} wanted)",
        ),
        Gate(
            "held_out_phrasings",
            min(n_aff, n_ref) >= levels["min_held_out"],
            f"{n_aff} affirmative and {n_ref} refusal continuations absent from every "
            f"calibration string (at least {levels['min_held_out']} per side wanted)",
        ),
    ]
    return claim_cell(
        row["excess_drop"],
        row["excess_ci_low"],
        row["excess_ci_high"],
        gates,
        targeted_drop=-row["targeted_effect"],
        random_mean_drop=-row["random_mean"],
        percentile=row["percentile"],
    )


def _unity_cell(row: dict, levels) -> dict:
    gates = [
        Gate(
            "resampling_exact",
            row["certified"] >= levels["min_certified"],
            f"{row['certified']:.1%} of the resampled sets' matrices certified exact (at least "
            f"{levels['min_certified']:.0%} wanted); observed sets rebuilt with Jaccard "
            f"{row['fidelity']:.3f} to the exact ones",
        ),
        Gate(  # the positive control as a gate too: a position needs a ceiling above chance
            "ceiling_above_chance",
            row["ceiling_ci_low"] > 0,
            f"random prompt groups overlap {row['ceiling_above_chance']:.4f} above chance, "
            f"95% [{row['ceiling_ci_low']:.4f}, {row['ceiling_ci_high']:.4f}]",
        ),
    ]
    return claim_cell(
        row["gap"],
        row["gap_ci_low"],
        row["gap_ci_high"],
        gates,
        position_harm=row["position_harm"],
        position_benign=row["position_benign"],
    )


def _percentiles(control: pd.DataFrame, direction: str) -> dict[str, dict[str, float]]:
    """Per model and measure: the targeted mask's percentile among its random masks."""
    rows = control[control["direction"] == direction]
    return {
        str(m): {r["measure"]: round(float(r["percentile"]), 1) for r in g.to_dict("records")}
        for m, g in rows.groupby("model", sort=False)
    }


class PrunedDiagnosticsResult(AnalysisResult):
    """Table ``bridge``: one row per model x condition x diagnostic headline, with the
    difference from the unpruned model."""

    TABLES: ClassVar[tuple[str, ...]] = ("bridge",)
    BEST_TABLE: ClassVar[str] = "bridge"
    BEST_COLUMN: ClassVar[str] = "difference"
    BEST_ABS: ClassVar[bool] = True
    NO_CLAIM: ClassVar[str] = (
        "a question of this companion (do the moral diagnostics change when harmful weights "
        "are pruned?), not a claim of Orgad et al. or of the paper"
    )

    def largest_change(self) -> float:
        """The largest absolute headline change under pruning (NaN when none was measured)."""
        diff = self.tables["bridge"]["difference"].abs()
        return float(diff.max()) if diff.notna().any() else float(np.nan)
