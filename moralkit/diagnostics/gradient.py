"""Gradient indifference: does closeness to a category centre follow human typicality?

(paper §2.3; book: Methods › Gradient, methods/gradient.md)

Per layer, every polar record gives a pair (x, y): x is the cosine between its centred
representation and the centre of its own category, y its typicality. Neutral records enter
twice, as (cosine to the virtue centre of their foundation, 0) and (cosine to the vice centre,
0). The statistic is Spearman's rho between x and y, overall and per category; the paper also
reports Pearson r with a Fisher-z interval, and the headline is the peak over layers.

Two variants:

- ``"paper"``: centres from all prototypes, and the prototypes also enter the correlation.
  That is mildly circular: a prototype contributes to its own centre (book: Methods ›
  Gradient, where it departs from the paper).
- ``"heldout"``: the prototypes of each category are split in two halves (by ``seed``); centres
  come from one half, and the correlation uses every record except that half.

Bootstrap intervals resample records (polar and neutral records separately, so the sample
sizes stay fixed), holding the centres fixed: they describe the record sampling of the
correlation, conditional on the centres.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from moralkit.activation_set import ActivationSet
from moralkit.diagnostics.centring import (
    category_centres,
    category_codes,
    centre_activations,
    iter_centred_layers,
    prototype_mask,
)
from moralkit.diagnostics.evidence import (
    VERDICT_TABLE_COLUMNS,
    VerdictLayers,
    build_evidence,
    claim_value,
    model_evidence,
)
from moralkit.diagnostics.inputs import DiagnosticConfig
from moralkit.diagnostics.resampling import bootstrap_spearman, fisher_interval
from moralkit.foundations import DIMENSIONS, FOUNDATIONS
from moralkit.records import MoralRecords
from moralkit.results import HEADLINE_COLUMNS, AnalysisResult, ClaimValue

if TYPE_CHECKING:
    from moralkit.diagnostics.controls import ControlResult
    from moralkit.diagnostics.power import PowerResult

VARIANTS: tuple[str, ...] = ("paper", "heldout")


@dataclass(frozen=True)
class GradientConfig(DiagnosticConfig):
    """Settings of the gradient diagnostic (paper §2.3; book: Methods › Gradient).

    ``variants``: any of ``("paper", "heldout")`` (a single name is accepted too).
    ``n_bootstrap`` record resamples per interval (0: no intervals); the overall interval at
    each variant's peak layer (the claim's) is redone with ``n_bootstrap_headline`` when that
    is larger (and ``n_bootstrap`` is not 0). ``seed`` also fixes
    which half of the prototypes builds the held-out centres. ``standardise`` as in
    :class:`~moralkit.diagnostics.categorical.CategoricalConfig`.
    """

    variants: Any = VARIANTS
    n_bootstrap: int = 200
    n_bootstrap_headline: int = 1000
    standardise: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        variants = (self.variants,) if isinstance(self.variants, str) else tuple(self.variants)
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown or not variants:
            raise ValueError(f"variants={self.variants!r}: expected some of {VARIANTS}")
        object.__setattr__(self, "variants", variants)
        if self.n_bootstrap < 0 or self.n_bootstrap_headline < 0:
            raise ValueError(
                f"n_bootstrap={self.n_bootstrap} and n_bootstrap_headline="
                f"{self.n_bootstrap_headline} must be >= 0"
            )


@dataclass
class GradientResult(VerdictLayers, AnalysisResult):
    """Tables of the gradient diagnostic, for one or more models (paper §2.3).

    - ``by_layer``: one row per model x layer x variant x category (``"overall"`` or a
      DIMENSIONS name): ``spearman`` with bootstrap ``ci_low``/``ci_high`` and ``spearman_p``,
      ``pearson`` with Fisher-z ``pearson_ci_low``/``pearson_ci_high``, and ``n`` (pairs,
      neutral records counted twice overall).
    - ``peaks``: per model x variant x category, the row at the layer with the highest
      Spearman.

    ``best()`` is each model's and variant's overall peak.
    """

    TABLES = ("by_layer", "peaks")
    BEST_TABLE = "by_layer"
    BEST_COLUMN = "spearman"
    BEST_WHERE = {"category": "overall"}
    BEST_GROUP = ("model", "pooling", "variant")

    def headline(self) -> pd.DataFrame:
        """Peak overall Spearman rho per model and variant (metric ``spearman_<variant>``)."""
        best = self.best()
        out = pd.DataFrame(
            {
                "model": best["model"],
                "diagnostic": "gradient",
                "metric": "spearman_" + best["variant"].astype(str),
                "value": best["spearman"],
                "ci_low": best["ci_low"],
                "ci_high": best["ci_high"],
                "layer": best["layer"],
                "relative_depth": best["relative_depth"],
            }
        )
        return out[list(HEADLINE_COLUMNS)]

    def _paper_best(self) -> pd.DataFrame:
        best = self.best()
        return best[best["variant"] == "paper"].dropna(subset=["spearman"])

    def verdict_table(self) -> pd.DataFrame:
        """Per model, the claim's effect: the paper variant's peak Spearman and interval."""
        t = self._paper_best().assign(metric="Spearman rho (paper variant)")
        t = t.rename(columns={"spearman": "value"})
        return t[list(VERDICT_TABLE_COLUMNS)].reset_index(drop=True)

    def claim(
        self, power: PowerResult | None = None, control: ControlResult | None = None
    ) -> list[ClaimValue]:
        """``gradient_indifference``: the highest peak overall Spearman of the paper variant
        over models, with its interval (``n_bootstrap_headline`` resamples), and the MDE of
        ``power`` and the positive ``control`` at that model and layer; the held-out peaks go
        into the note and ``per_model``."""
        best, paper = self.best(), self._paper_best()
        if paper.empty:
            return []
        top = paper.loc[paper["spearman"].idxmax()]
        heldout = best[best["variant"] == "heldout"]
        note = (
            f"best-layer overall Spearman, paper variant: {top['model']} layer "
            f"{int(top['layer'])} [{top['ci_low']:.3f}, {top['ci_high']:.3f}]"
        )
        if len(heldout):
            shown = ", ".join(f"{r.model} {r.spearman:.3f}" for r in heldout.itertuples())
            note += f"; held-out variant: {shown}"
        held = {str(r.model): round(float(r.spearman), 4) for r in heldout.itertuples()}
        per_model = {}
        for r in paper.itertuples():
            ev = build_evidence((r.ci_low, r.ci_high), str(r.model), "gradient", power, control)
            per_model[str(r.model)] = {
                "peak_layer": int(r.layer), "spearman": round(float(r.spearman), 4),
                "spearman_heldout": held.get(str(r.model)), **model_evidence(ev),
            }  # fmt: skip
        evidence = build_evidence(
            (top["ci_low"], top["ci_high"]), str(top["model"]), "gradient", power, control
        )
        extra = {"per_model": per_model, "headline_model": str(top["model"])}
        value = round(float(top["spearman"]), 4)
        return [claim_value("gradient_indifference", value, note, extra, evidence)]


def typicality_counts(records: MoralRecords) -> pd.DataFrame:
    """Records per pole (rows) and typicality stratum (columns): the y values of the gradient."""
    return records.table.groupby(["pole", "typicality"]).size().unstack(fill_value=0)


def split_prototypes(records: MoralRecords, seed: int = 0) -> np.ndarray:
    """Boolean mask of the centre-building half of each category's prototypes.

    Each category's prototypes are shuffled by ``seed`` and the first ``ceil(n/2)`` kept, so a
    category with a single prototype still gets a centre (and no held-out prototype).
    """
    rng = np.random.default_rng(seed)
    proto = prototype_mask(records)
    codes = category_codes(records)
    half = np.zeros(len(records), dtype=bool)
    for c in range(len(DIMENSIONS)):
        members = np.flatnonzero(proto & (codes == c))
        chosen = rng.permutation(members)[: (members.size + 1) // 2]
        half[chosen] = True
    return half


@dataclass(frozen=True)
class PairLayout:
    """Which (record, centre) pairs the gradient correlates: row index ``rec``, centre index
    ``cat`` (into DIMENSIONS), typicality ``y`` (0 for neutral) and the ``neutral`` flag."""

    rec: np.ndarray
    cat: np.ndarray
    y: np.ndarray
    neutral: np.ndarray


def pair_layout(records: MoralRecords, include: np.ndarray | None = None) -> PairLayout:
    """The pairs of the paper's gradient analysis (paper §2.3): polar records once (own
    centre), neutral records twice (virtue and vice centre of their foundation); ``include``
    restricts which records enter."""
    table = records.table
    keep = np.ones(len(records), dtype=bool) if include is None else np.asarray(include, bool)
    codes = category_codes(records)
    foundation_idx = table["foundation"].map({f: k for k, f in enumerate(FOUNDATIONS)}).to_numpy()
    polar = np.flatnonzero(keep & (codes >= 0))
    neutral = np.flatnonzero(keep & (codes < 0))
    cat = np.concatenate(
        [codes[polar], 2 * foundation_idx[neutral], 2 * foundation_idx[neutral] + 1]
    ).astype(np.int64)
    return PairLayout(
        rec=np.concatenate([polar, neutral, neutral]),
        cat=cat,
        y=np.concatenate([table["typicality"].to_numpy()[polar], np.zeros(2 * neutral.size)]),
        neutral=np.concatenate([np.zeros(polar.size, bool), np.ones(2 * neutral.size, bool)]),
    )


def pair_cosines(Xc: np.ndarray, centres: np.ndarray, layout: PairLayout) -> np.ndarray:
    """x of every pair: the cosine between a record and its centre (NaN for a missing centre)."""
    norms = np.linalg.norm(centres, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        dots = Xc @ (centres / norms[:, None]).T  # (n, 10): one BLAS product
        return dots[layout.rec, layout.cat] / np.linalg.norm(Xc, axis=1)[layout.rec]


def gradient_pairs(
    Xc: np.ndarray,
    records: MoralRecords,
    centres: np.ndarray,
    include: np.ndarray | None = None,
) -> pd.DataFrame:
    """The (x, y) pairs of the paper's gradient analysis (paper §2.3) for one layer.

    Returns one row per pair with ``record`` (row index), ``category`` (the centre used),
    ``x`` (cosine to that centre), ``y`` (typicality, 0 for neutral) and ``neutral``. Polar
    records give one pair, neutral records two (virtue and vice centre of their foundation).
    ``include`` restricts which records enter.
    """
    layout = pair_layout(records, include)
    return pd.DataFrame(
        {
            "record": layout.rec,
            "category": np.asarray(DIMENSIONS, dtype=object)[layout.cat],
            "x": pair_cosines(Xc, centres, layout),
            "y": layout.y,
            "neutral": layout.neutral,
        }
    )


def correlate_pairs(
    pairs: pd.DataFrame, n_bootstrap: int, rng: np.random.Generator
) -> dict[str, float]:
    """Spearman (+ bootstrap percentile CI over records) and Pearson (+ Fisher-z CI).

    Neutral records keep both of their pairs together in a resample; polar and neutral
    records are resampled separately so every resample has the same composition.
    """
    pairs = pairs[np.isfinite(pairs["x"].to_numpy())]
    n = len(pairs)
    out = {"n": n, "spearman": np.nan, "spearman_p": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    out.update({"pearson": np.nan, "pearson_ci_low": np.nan, "pearson_ci_high": np.nan})
    x, y = pairs["x"].to_numpy(), pairs["y"].to_numpy()
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    rho, p = stats.spearmanr(x, y)
    r = float(np.corrcoef(x, y)[0, 1])
    out.update({"spearman": float(rho), "spearman_p": float(p), "pearson": r})
    out["pearson_ci_low"], out["pearson_ci_high"] = fisher_interval(r, n)
    if n_bootstrap > 0:
        # Group pair rows by record: polar records have one pair, neutral records two.
        neutral = pairs["neutral"].to_numpy()
        polar_rows = np.flatnonzero(~neutral)
        neutral_rows = np.flatnonzero(neutral)
        neutral_rows = neutral_rows[
            np.argsort(pairs["record"].to_numpy()[neutral_rows], kind="stable")
        ]
        _, sizes = np.unique(pairs["record"].to_numpy()[neutral_rows], return_counts=True)
        # Ragged only when a centre is missing (its NaN cosines dropped): resample pairs then.
        width = int(sizes[0]) if sizes.size and (sizes == sizes[0]).all() else 1
        groups = neutral_rows.reshape(-1, width)
        draws = [polar_rows[rng.integers(0, polar_rows.size, (n_bootstrap, polar_rows.size))]]
        if len(groups):
            pick = groups[rng.integers(0, len(groups), (n_bootstrap, len(groups)))]
            draws.append(pick.reshape(n_bootstrap, -1))
        boot = bootstrap_spearman(x, y, np.concatenate(draws, axis=1))
        if np.isfinite(boot).any():
            out["ci_low"], out["ci_high"] = np.nanpercentile(boot, [2.5, 97.5])
    return out


def gradient_indifference(
    acts: ActivationSet,
    records: MoralRecords,
    config: GradientConfig = GradientConfig(),
    progress: bool = False,
) -> GradientResult:
    """In-category typicality gradient per layer (paper §2.3; book: Methods › Gradient,
    methods/gradient.md), in the paper's (circular) and a held-out variant, with bootstrap
    intervals over records.

    Per category, the pairs are that category's polar records plus, as y = 0 anchors, the
    neutral records of its foundation with their cosine to that category's centre (our reading
    of the paper's per-category analysis; the overall correlation pools all pairs).

    Ground truths without graded typicality (``records.has_typicality`` is False: MFD 2.0, the
    original MFD) are refused: a correlation with a constant is meaningless.
    """
    if not records.has_typicality:
        raise ValueError(
            "the gradient diagnostic does not apply to these records: their ground truth has "
            "no graded typicality (every record is a prototype); use a ground truth with "
            "typicality strata (socialchem, moralstrength, emfd) or a file with a "
            "'typicality' column"
        )
    variants, seed, n_bootstrap = config.variants, config.seed, config.n_bootstrap
    pooling, standardise = config.pooling, config.standardise
    rng = np.random.default_rng(seed)
    heldout_half = split_prototypes(records, seed) if "heldout" in variants else None
    rows = []
    for layer, depth, Xc in iter_centred_layers(
        acts,
        records,
        config.layers,
        pooling,
        desc=f"gradient {acts.model_id}",
        progress=progress,
        standardise=standardise,
    ):
        base = {"model": acts.model_id, "layer": layer, "relative_depth": depth}
        base["pooling"] = pooling
        base["standardised"] = standardise
        for v in variants:
            pairs = variant_pairs(Xc, records, v, heldout_half)
            rows.append(
                {
                    **base,
                    "variant": v,
                    "category": "overall",
                    **correlate_pairs(pairs, n_bootstrap, rng),
                }
            )
            for name, group in pairs.groupby("category", sort=False):
                stats_row = correlate_pairs(group, n_bootstrap, rng)
                rows.append({**base, "variant": v, "category": name, **stats_row})
    by_layer = pd.DataFrame(rows)
    by_layer["n_bootstrap"] = n_bootstrap
    _headline_intervals(by_layer, acts, records, config, heldout_half, rng)
    order = {c: i for i, c in enumerate(("overall",) + DIMENSIONS)}
    by_layer = by_layer.sort_values(
        ["variant", "layer", "category"], key=lambda s: s.map(order) if s.name == "category" else s
    ).reset_index(drop=True)
    return GradientResult({"by_layer": by_layer, "peaks": peak_layers(by_layer)}, config)


def variant_pairs(
    Xc: np.ndarray, records: MoralRecords, variant: str, heldout_half: np.ndarray | None
) -> pd.DataFrame:
    """One layer's pairs in the paper's variant (all prototypes build the centres and are
    scored) or the held-out one (half the prototypes build them and are left out)."""
    mask = None if variant == "paper" else heldout_half
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # empty categories: NaN centres, NaN rho
        centres = category_centres(Xc, records, mask=mask)
    include = None if variant == "paper" else ~heldout_half
    return gradient_pairs(Xc, records, centres, include=include)


def _headline_intervals(
    by_layer: pd.DataFrame,
    acts: ActivationSet,
    records: MoralRecords,
    config: GradientConfig,
    heldout_half: np.ndarray | None,
    rng: np.random.Generator,
) -> None:
    """Recompute the overall interval at each variant's peak layer with
    ``n_bootstrap_headline`` resamples (in place): the claim's interval needs >= 1,000."""
    n = config.n_bootstrap_headline
    if n <= config.n_bootstrap or config.n_bootstrap == 0:  # 0: no intervals at all
        return
    overall = by_layer[(by_layer["category"] == "overall") & by_layer["spearman"].notna()]
    for variant, rows in overall.groupby("variant", sort=False):
        i = rows["spearman"].idxmax()
        layer = int(by_layer.at[i, "layer"])
        X = acts.get(layer, config.pooling).astype(np.float64)
        Xc = centre_activations(X, standardise=config.standardise)
        stats_row = correlate_pairs(variant_pairs(Xc, records, variant, heldout_half), n, rng)
        by_layer.loc[i, ["ci_low", "ci_high", "n_bootstrap"]] = (
            stats_row["ci_low"], stats_row["ci_high"], n
        )  # fmt: skip


def peak_layers(by_layer: pd.DataFrame) -> pd.DataFrame:
    """Per model x variant x category, the row at the layer with the highest Spearman rho."""
    valid = by_layer.dropna(subset=["spearman"])
    if valid.empty:
        return valid.copy()
    idx = valid.groupby(["model", "pooling", "variant", "category"], sort=False)[
        "spearman"
    ].idxmax()
    return valid.loc[idx].reset_index(drop=True)
