"""Settings of the SAE surgery: pretraining presets, identification and fine-tuning.

Each default is defined once, here (paper §4.2-4.4, §4.6; book: Methods › SAE surgery,
methods/sae.md). Four pretraining presets:

- ``paper-run``: what the released run folder says was used (16x width, so 65,536 latents on
  Qwen3-8B; target L0 100; 200 epochs);
- ``paper-code``: the training script's defaults (16,384 latents, target L0 50, 100 epochs);
- ``quick``: SmolLM2-135M on one layer, sized to a few minutes on 2 CPU cores, departing from
  the script toward reconstruction (see :data:`DEPARTURE_REASONS`);
- ``tiny``: the test suite's book build (seconds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd

__all__ = [
    "FINETUNE_PRESETS",
    "FinetuneConfig",
    "IdentifyConfig",
    "OBJECTIVES",
    "PRESETS",
    "SAEPreset",
    "SAETrainConfig",
    "finetune_preset",
    "preset",
    "preset_departures",
]


@dataclass(frozen=True)
class SAETrainConfig:
    """Pretraining of one ReLU + L1 SAE on centred pooled activations (paper §4.2).

    ``width`` fixes the number of latents; when it is None the width is
    ``round(expansion * d_in)``. The loss is the paper's mean-MSE + ``l1`` x mean|z|, with
    ``l1`` adapted once per epoch toward ``target_l0`` (see :mod:`moralkit.sae.train`).
    """

    width: int | None = None
    expansion: float = 16.0
    target_l0: float = 50.0
    epochs: int = 100
    batch_size: int = 4096
    lr: float = 1e-4
    weight_decay: float = 0.0
    l1_init: float = 1e-3
    l1_min: float = 1e-6
    l1_max: float = 100.0
    warmup_epochs: int = 5
    warmup_start: float = 0.01  # warm-up starts at this fraction of lr
    lr_end_fraction: float = 0.01  # cosine decays to this fraction of lr
    grad_clip: float = 1.0
    stop_mse: float = 1e-3  # early stop: val MSE below this ...
    stop_l0_tolerance: float = 0.1  # ... and L0 within this fraction of target ...
    stop_patience: int = 5  # ... for this many consecutive epochs
    seed: int = 0
    # the official script's loop (paper presets match it; see methods/sae.md, "Departures")
    drop_last: bool = False  # drop the last partial batch of every epoch
    batch_mean: bool = False  # report and early-stop on the unweighted mean of batch means
    autocast: str | None = None  # "float16": fp16 autocast with a gradient scaler; None: fp32
    # departures toward reconstruction (the quick preset; the paper presets keep 0)
    l1_adapt_every: int = 0  # 0: λ moves once per epoch (paper); n: every n steps
    resample_every: int = 0  # 0: never; n: latents silent for n steps are re-initialised
    val_fraction: float = 0.05  # unlabelled vectors held out for validation

    def __post_init__(self) -> None:
        if self.autocast not in (None, "float16", "bfloat16"):
            raise ValueError(f"autocast={self.autocast!r}; expected None, 'float16' or 'bfloat16'")
        if self.l1_adapt_every < 0 or self.resample_every < 0:
            raise ValueError("l1_adapt_every and resample_every must be >= 0")

    def d_sae(self, d_in: int) -> int:
        """Number of latents for an input width ``d_in``."""
        if self.width is not None:
            return int(self.width)
        return max(1, int(round(self.expansion * d_in)))

    def key(self) -> dict:
        """The fields that change the trained weights (for the cache key)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class IdentifyConfig:
    """Moral feature identification on the validation split (paper §4.3)."""

    threshold: float = 0.1  # |r| above this counts as "responds to the dimension"
    weak_below: float = 0.05  # max|r| below this: a weak feature
    dominance: float = 1.5  # strict monosemantic: |r|max > dominance x second-largest |r|
    top_k: int = 50  # top positive features per dimension
    pair_k: int = 20  # top positive features per pole, for the 5 polarity pairs
    proto_top: int = 20  # features whose prototypicality Spearman is averaged
    collapse_cosine: float = 0.5  # virtue/vice profile cosine above this: collapsed


@dataclass(frozen=True)
class FinetuneConfig:
    """Selective fine-tuning with the code's six-term objective (paper §4.4).

    ``OBJECTIVES["page"]`` (``w_l1`` and ``w_off_dimension`` set to 0) keeps reconstruction
    and the paper page's three named losses: alignment, polarity contrast and prototype
    ordering (the typicality term). ``sampler_bug=True`` reproduces the released code's
    sampler weights, where the 3.0 weight of the most typical records is overwritten by 2.0.
    """

    w_reconstruction: float = 1.0
    w_l1: float = 1e-4
    w_alignment: float = 0.5
    w_polarity: float = 0.3
    w_typicality: float = 0.2
    w_off_dimension: float = 0.1
    polarity_margin: float = 0.5
    typicality_margin: float = 0.1
    pole_threshold: float = 0.3  # m_virtue / m_vice above this: a virtue / vice sample
    min_pole_samples: int = 4
    min_dimension_samples: int = 16
    typicality_pairs: int = 100
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_fraction: float = 0.1
    div_factor: float = 25.0
    final_div_factor: float = 1000.0
    batch_size: int = 512
    epochs: int = 50
    patience: int = 10
    min_delta: float = 1e-4
    grad_clip: float = 1.0
    sampler_bug: bool = False
    seed: int = 0


#: the official training loop: last partial batch dropped, batch-mean reporting, fp16 autocast
OFFICIAL_LOOP: dict[str, object] = {"drop_last": True, "batch_mean": True, "autocast": "float16"}

PRESETS: dict[str, SAETrainConfig] = {
    "paper-run": SAETrainConfig(expansion=16.0, target_l0=100.0, epochs=200, **OFFICIAL_LOOP),
    "paper-code": SAETrainConfig(width=16_384, target_l0=50.0, epochs=100, **OFFICIAL_LOOP),
    # SmolLM2-135M on a CPU: ~1,500 steps on ~8,000 unlabelled vectors. Every departure from
    # paper-code is toward reconstruction (the gate needs 80% of the variance kept, also without
    # the massive-activation direction): 1x width, target L0 288 (half the latents: at 192 the
    # labelled records kept ~0.75 of the variance outside the top direction, at 256 ~0.80),
    # λ started near where it settles and moved every 10 steps, dead latents resampled
    "quick": SAETrainConfig(
        expansion=1.0,
        target_l0=288.0,
        epochs=48,
        batch_size=256,
        lr=3e-3,
        l1_init=0.2,
        warmup_epochs=1,
        l1_adapt_every=10,
        resample_every=500,
    ),
    "tiny": SAETrainConfig(
        expansion=1.0, target_l0=10.0, epochs=3, batch_size=128, lr=1e-3, warmup_epochs=1
    ),
}

#: Fine-tuning settings that go with each preset (paper values for the paper presets).
FINETUNE_PRESETS: dict[str, FinetuneConfig] = {
    "paper-run": FinetuneConfig(),
    "paper-code": FinetuneConfig(),
    "quick": FinetuneConfig(epochs=15, batch_size=256, lr=1e-3, patience=4),
    "tiny": FinetuneConfig(epochs=2, batch_size=128, lr=1e-3, patience=2),
}


#: Why a preset departs from the training script's defaults (``paper-code``), per setting.
DEPARTURE_REASONS: dict[str, str] = {
    "width": "the width follows the expansion, not a fixed count",
    "expansion": "1x: a 135M model's 576 inputs, and a CPU budget (cost grows with the width)",
    "target_l0": "half the latents active: reconstruction first (the gate needs 80% of the "
    "variance, also without the massive-activation direction)",
    "epochs": "a few thousand steps on a CPU instead of 100 epochs of 200,000 vectors",
    "batch_size": "more steps from fewer vectors",
    "lr": "a larger step: a few thousand steps, not hundreds of thousands",
    "l1_init": "λ starts near where L0 settles instead of climbing to it for thousands of steps",
    "warmup_epochs": "the warm-up kept to a small share of a short run",
    "l1_adapt_every": "λ moves every few steps (the paper's rule, per window), not per epoch",
    "resample_every": "dead latents re-initialised (at 4x width, L0 64: 16% died without it)",
    "drop_last": "every vector is used: the quick pool is small",
    "batch_mean": "reported numbers are pooled over vectors (equal for equal batches)",
    "autocast": "float32 on CPU: fp16 autocast is a GPU speed-up with no CPU benefit",
}


def preset_departures(name: str) -> pd.DataFrame:
    """The settings in which preset ``name`` departs from the official training script's
    defaults (``paper-code``): one row per setting with both values and why."""
    mine, paper = dataclasses.asdict(preset(name)), dataclasses.asdict(PRESETS["paper-code"])
    skip = {"seed", "val_fraction"}
    rows = [
        {"setting": k, name: str(mine[k]), "paper code": str(paper[k]),
         "why": DEPARTURE_REASONS.get(k, "")}
        for k in mine
        if k not in skip and mine[k] != paper[k]
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["setting", name, "paper code", "why"])


class SAEPreset(str):
    """A preset name checked against :data:`PRESETS` once, where the chapters' ``sae_preset``
    parameter enters (``Chapter.start``); ``.train`` and ``.finetune`` are its settings.

    A ``str``, so :func:`preset`, the SAE store's keys and provenance read it unchanged.
    """

    def __new__(cls, name: str) -> SAEPreset:
        if name not in PRESETS or name not in FINETUNE_PRESETS:
            raise ValueError(f"unknown SAE preset {name!r}; valid names: {list(PRESETS)}")
        return super().__new__(cls, name)

    @property
    def train(self) -> SAETrainConfig:
        """The pretraining settings of this preset."""
        return PRESETS[self]

    @property
    def finetune(self) -> FinetuneConfig:
        """The fine-tuning settings that go with this preset."""
        return FINETUNE_PRESETS[self]


def preset(name: str, **overrides: object) -> SAETrainConfig:
    """The pretraining preset ``name`` with some fields replaced."""
    if name not in PRESETS:
        raise ValueError(f"unknown SAE preset {name!r}; valid names: {list(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


#: Objective versions: ``code`` keeps the code's six weights; ``page`` keeps reconstruction and
#: the three losses the paper page names (alignment, polarity contrast, prototype ordering).
OBJECTIVES: dict[str, dict[str, float]] = {
    "code": {},
    "page": {"w_l1": 0.0, "w_off_dimension": 0.0},
}


def finetune_preset(name: str, **overrides: object) -> FinetuneConfig:
    """The fine-tuning settings that go with preset ``name``, with some fields replaced."""
    if name not in FINETUNE_PRESETS:
        raise ValueError(f"unknown SAE preset {name!r}; valid names: {list(FINETUNE_PRESETS)}")
    return dataclasses.replace(FINETUNE_PRESETS[name], **overrides)
