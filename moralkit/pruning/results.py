"""Settings and result shapes of chapter 10 (``XConfig`` -> ``XResult``, see moralkit.results).

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.)

- :class:`HarmfulWeightsConfig` -> :class:`HarmfulWeightsResult`: both pruning directions, the
  compactness curve, the unity overlaps and sample answers;
- :class:`BridgeResult`: the moral diagnostics of chapters 02-05 with and without pruning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from moralkit.pruning.masks import WEI_README_P
from moralkit.results import AnalysisResult, ClaimValue

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


def _per_model(table: pd.DataFrame, column: str) -> dict[str, float]:
    return {str(m): round(float(v), 4) for m, v in table.groupby("model")[column].mean().items()}


class HarmfulWeightsResult(AnalysisResult):
    """Tables ``effects`` (model x direction x condition: ASR, compliance margin, perplexity),
    ``compactness`` (the same cheap measures over q), ``utility`` (chapter 08's behavioural
    measures and perplexity per headline condition, with intervals and paired differences),
    ``unity`` (Jaccard overlaps), ``by_module`` (where the headline masks lie), ``answers`` (a
    few greedy answers) and ``generations`` (every greedy answer, for a judge)."""

    TABLES: ClassVar[tuple[str, ...]] = (
        "effects",
        "compactness",
        "utility",
        "unity",
        "by_module",
        "answers",
        "generations",
    )
    BEST_TABLE: ClassVar[str] = "effects"
    BEST_COLUMN: ClassVar[str] = "margin_drop"
    BEST_GROUP: ClassVar[tuple[str, ...]] = ("model", "direction")

    def drops(self, direction: str) -> pd.DataFrame:
        """Per model: unpruned minus pruned ASR and compliance margin for one direction."""
        e = self.tables["effects"]
        e = e[e["direction"] == direction]
        base = e[e["condition"] == UNPRUNED].set_index("model")
        cut = e[e["condition"] != UNPRUNED].set_index("model")
        return pd.DataFrame(
            {
                "asr_drop": base["asr"] - cut["asr"],
                "margin_drop": base["compliance_margin"] - cut["compliance_margin"],
                "perplexity_ratio": cut["perplexity"] / base["perplexity"],
                "fraction_pruned": cut["fraction_pruned"],
            }
        ).reset_index()

    def claim(self) -> list[ClaimValue]:
        out = []
        drops = self.drops(ORGAD)
        if len(drops):
            out.append(
                ClaimValue(
                    "harmful_weights_compact",
                    round(float(drops["margin_drop"].mean()), 4),
                    note="drop of the comply-minus-refuse log-likelihood margin after pruning the "
                    "harmful-generation set (mean over models); ASR drop per model in extra",
                    extra={
                        "per_model": _per_model(drops, "margin_drop"),
                        "asr_drop": _per_model(drops, "asr_drop"),
                        "fraction_pruned": _per_model(drops, "fraction_pruned"),
                    },
                )
            )
            out.append(self._utility_claim(drops))
        unity = self.tables["unity"]
        if len(unity):
            means = unity.groupby(["model", "comparison"])["jaccard"].mean().unstack()
            shared = (means["harm type vs harm type"] > means["harm type vs benign"]).all()
            out.append(
                ClaimValue(
                    "harmful_weights_unified",
                    bool(shared),
                    note="every model: harm-type sets overlap more than harm-vs-benign sets",
                    extra={
                        "per_model": {
                            str(m): {k: round(float(v), 4) for k, v in row.items()}
                            for m, row in means.iterrows()
                        }
                    },
                )
            )
        return out

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


class BridgeResult(AnalysisResult):
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
