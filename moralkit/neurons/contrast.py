"""Locate value neurons by contrasting gate activations under opposing aspects (ValueLocate).

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. For every (layer, neuron)
of the gated MLPs (:mod:`moralkit.neurons.hooks`) and two prompt sets A (a value) and B (its
opposite aspect)::

    diff = P(gate > 0 | A) - P(gate > 0 | B)        (score="probability", the default)
    diff = mean(gate | A) - mean(gate | B)          (score="mean", the paper's text allows it)

counted over tokens (prompt tokens by default; generated tokens with ``tokens="generated"``, as
the probable author code ``007zzZZZ/llm-value-neuron`` does). A pole's neurons are the
``top_k`` (2,000) largest ``diff`` over all layers together, plus every further neuron with
``diff >= threshold`` (0.1); B's are selected the same way from ``-diff``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from moralkit.models.decoder import find_decoder, input_device
from moralkit.models.generation import generate_ids, greedy, padding_side
from moralkit.neurons.hooks import ActiveCounter, gate_hooks, gate_width

if TYPE_CHECKING:
    from moralkit.models import LoadedModel

SCORES: tuple[str, ...] = ("probability", "mean")
TOKEN_SCOPES: tuple[str, ...] = ("prompt", "generated")
NEURON_COLUMNS = ["layer", "neuron", "diff", "p_active", "mean_active", "rank"]


@dataclass(frozen=True)
class ContrastConfig:
    """How neurons are scored and selected (defaults: the probable author code's)."""

    score: str = "probability"
    top_k: int = 2000
    threshold: float = 0.1
    tokens: str = "prompt"
    max_new_tokens: int = 16
    batch_size: int = 8
    max_length: int = 128
    progress: bool = False  # one bar per prompt set; the chapter's long loop is the γ sweep

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {self.score!r}")
        if self.tokens not in TOKEN_SCOPES:
            raise ValueError(f"tokens must be one of {TOKEN_SCOPES}, got {self.tokens!r}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")


@dataclass(frozen=True)
class NeuronStats:
    """P(gate > 0) and mean gate activation per (layer, neuron), over ``n_tokens`` tokens."""

    p_active: np.ndarray
    mean_active: np.ndarray
    n_tokens: int

    def score(self, kind: str) -> np.ndarray:
        return self.p_active if kind == "probability" else self.mean_active


def encode_batches(
    tokenizer, texts: Sequence[str], batch_size: int, max_length: int, side: str = "right"
) -> Iterator[dict[str, torch.Tensor]]:
    """``{input_ids, attention_mask}`` batches of ``texts`` (with the tokenizer's BOS,
    truncated to ``max_length``), padded on ``side``: right padding keeps every real token at
    its unpadded position, left padding lets generation continue every row."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with padding_side(tokenizer, side):
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
            )
            yield {k: batch[k] for k in ("input_ids", "attention_mask")}


@torch.no_grad()
def neuron_stats(
    loaded: LoadedModel, texts: Sequence[str], config: ContrastConfig | None = None
) -> NeuronStats:
    """Count gate activations of ``loaded`` on ``texts`` (see :class:`ContrastConfig`)."""
    config = config or ContrastConfig()
    if not texts:
        raise ValueError("neuron_stats needs at least one text")
    model = loaded.model
    parts = find_decoder(model)
    generated = config.tokens == "generated"
    counter = ActiveCounter(len(parts.layers), gate_width(model), decode_only=generated)
    side = "left" if generated else "right"
    batches = encode_batches(loaded.tokenizer, texts, config.batch_size, config.max_length, side)
    total = -(-len(texts) // config.batch_size)
    device = input_device(parts)
    with gate_hooks(model, counter):
        for batch in tqdm(batches, total=total, desc="gate counts", disable=not config.progress):
            counter.mask = batch["attention_mask"].bool().to(device)
            if generated:  # every row contributes the same number of decode steps
                n = config.max_new_tokens
                generate_ids(loaded, batch, greedy(n), min_new_tokens=n)
            else:
                model(**{k: v.to(device) for k, v in batch.items()})
    return NeuronStats(counter.probabilities(), counter.means(), int(counter.tokens[0]))


def select_neurons(diff: np.ndarray, top_k: int, threshold: float) -> np.ndarray:
    """Flat indices of the ``top_k`` largest ``diff`` plus all further ones >= ``threshold``,
    ordered by decreasing ``diff`` (ties broken by index, so the order is deterministic)."""
    flat = np.asarray(diff, dtype=np.float64).ravel()
    order = np.lexsort((np.arange(flat.size), -flat))
    keep = np.zeros(flat.size, dtype=bool)
    keep[order[: min(top_k, flat.size)]] = True
    keep |= flat >= threshold
    return order[keep[order]]


def neuron_table(diff: np.ndarray, own: NeuronStats, selected: np.ndarray) -> pd.DataFrame:
    """One row per selected neuron: ``layer, neuron, diff, p_active, mean_active, rank``.

    ``p_active`` and ``mean_active`` are measured on the pole's own prompts; ``p_active`` is
    the ``P`` of the edit rule.
    """
    width = diff.shape[1]
    layer, neuron = np.divmod(selected, width)
    return pd.DataFrame(
        {
            "layer": layer.astype(int),
            "neuron": neuron.astype(int),
            "diff": diff.ravel()[selected],
            "p_active": own.p_active.ravel()[selected],
            "mean_active": own.mean_active.ravel()[selected],
            "rank": np.arange(len(selected), dtype=int),
        },
        columns=NEURON_COLUMNS,
    )


def contrast_poles(
    stats_a: NeuronStats, stats_b: NeuronStats, config: ContrastConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Neurons of pole A, neurons of pole B, and the (layer, neuron) ``diff`` of A over B."""
    config = config or ContrastConfig()
    diff = stats_a.score(config.score) - stats_b.score(config.score)
    pole_a = neuron_table(diff, stats_a, select_neurons(diff, config.top_k, config.threshold))
    pole_b = neuron_table(-diff, stats_b, select_neurons(-diff, config.top_k, config.threshold))
    return pole_a, pole_b, diff


def locate_poles(
    loaded: LoadedModel,
    texts_a: Sequence[str],
    texts_b: Sequence[str],
    config: ContrastConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """:func:`neuron_stats` on both prompt sets, then :func:`contrast_poles`."""
    config = config or ContrastConfig()
    stats_a = neuron_stats(loaded, texts_a, config)
    stats_b = neuron_stats(loaded, texts_b, config)
    return contrast_poles(stats_a, stats_b, config)
