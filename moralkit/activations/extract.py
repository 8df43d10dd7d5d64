"""Extraction: pooled residual streams of a loaded model for a list of texts, fast.

Same numbers as the paper's loop up to float rounding, less work: packed batches
(:mod:`~moralkit.activations.batching`), hooks that stop the forward after the deepest requested
block (:mod:`~moralkit.activations.hooks`), and a thread count chosen per model
(:func:`moralkit.threads.choose_num_threads`). (paper §2.1; book: Methods › Activations,
methods/activations.md.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from moralkit.activation_set import ActivationSet
from moralkit.activations.batching import (
    BatchLayout,
    packed_layout,
    padded_layout,
    plan_batches,
    plan_packed_batches,
)
from moralkit.activations.hooks import Capture, capture_layers, packing_matches_padding, run_forward
from moralkit.activations.prompts import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPLATE,
    build_prompts,
    check_max_tokens,
    check_poolings,
    check_texts,
    tokenize_prompts,
    truncate_sequences,
)
from moralkit.layers import check_layer_indices
from moralkit.models.decoder import DecoderParts, find_decoder, input_device
from moralkit.models.loading import LoadedModel
from moralkit.threads import choose_num_threads, torch_threads

DEFAULT_BATCH_TOKENS = 2048  # CPU: cache-friendly batches
GPU_BATCH_TOKENS = 16384  # GPU: enough work per kernel launch
DEFAULT_ROW_WIDTH = 64


# Long only in its signature and docstring (every setting documented once); the body reads as
# the pipeline: check, tokenize, plan batches, run the hooked forward passes, record provenance.
def extract_activations(
    loaded: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    poolings: Sequence[str] | str = ("mean", "last"),
    template: str = DEFAULT_TEMPLATE,
    system_prompt: str | None = None,
    batch_tokens: int | None = None,
    packing: bool = True,
    row_width: int = DEFAULT_ROW_WIDTH,
    padding_side: str = "right",
    num_threads: int | str | None = "auto",
    progress: bool = True,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ActivationSet:
    """Pooled residual streams after each requested decoder layer (paper §2.1; book: Methods ›
    Activations, methods/activations.md).

    Returns an :class:`ActivationSet` whose rows follow ``texts`` (a list of str; duplicates are
    extracted twice, :func:`~moralkit.activations.cached_activations` dedupes). ``layers``
    holds resolved 0-based indices (``None``: every layer); a layer spec is resolved before it
    gets here (:meth:`~moralkit.layers.LayerSpec.resolve`, ``Chapter.layers``), so text or a
    spec raises ``TypeError`` (:func:`~moralkit.layers.check_layer_indices`).
    Prompts longer than ``max_tokens`` (or the model's positions) keep their first tokens; the
    count is ``meta["n_truncated"]`` and a warning says so. ``batch_tokens`` bounds the
    positions per forward pass. With ``packing`` (default) several texts share a row of
    ``row_width`` tokens, each with its own positions and attention span (verified on the model
    first; falls back to padding if the model does not support it); without it, texts are
    padded on ``padding_side`` (which does not change the result: tested). ``num_threads`` sets
    torch's CPU threads for this call: an int, None (torch's setting) or "auto"
    (:func:`~moralkit.threads.choose_num_threads`).
    """
    texts = check_texts(texts)
    parts = find_decoder(loaded.model)
    device = input_device(parts)
    batch_tokens = _batch_tokens(batch_tokens, row_width, device)
    chosen_layers = check_layer_indices(layers, loaded.n_layers)
    chosen_poolings = check_poolings(poolings)
    limit = check_max_tokens(max_tokens, loaded.max_positions)
    sequences, n_truncated = _token_ids(loaded.tokenizer, texts, template, system_prompt, limit)
    pad_id = _pad_id(loaded.tokenizer)
    n_batches, layouts, layout_name = _plan_layouts(
        loaded, sequences, pad_id, batch_tokens, packing, row_width, padding_side
    )
    capture = _capture_for(chosen_layers, chosen_poolings, len(texts), loaded.hidden_size)
    n_tokens = sum(len(seq) for seq in sequences)
    num_threads = _thread_count(num_threads, parts, loaded.hidden_size, batch_tokens)
    started = time.perf_counter()
    bar = tqdm(total=n_tokens, desc=f"{loaded.name}: extracting", unit="tok", disable=not progress)
    with torch.inference_mode(), capture_layers(parts, capture), torch_threads(num_threads):
        positions = _run_batches(parts, layouts, capture, device, bar)
    bar.close()
    wall = time.perf_counter() - started
    meta = _meta(loaded, template, system_prompt, chosen_poolings, len(texts), n_tokens)
    meta.update(
        {
            "max_tokens": limit,
            "n_truncated": n_truncated,
            "positions_run": positions,
            "n_batches": n_batches,
            "batch_tokens": batch_tokens,
            "layout": layout_name,
            "wall_s": round(wall, 3),
            "tokens_per_s": round(n_tokens / wall, 1) if wall > 0 else None,
            "torch_threads": num_threads,
        }
    )
    return ActivationSet(capture.arrays, chosen_layers, loaded.n_layers, loaded.name, meta)


def _batch_tokens(batch_tokens: int | None, row_width: int, device: torch.device) -> int:
    """``batch_tokens``, defaulted per device; ValueError unless it and ``row_width`` are > 0."""
    if batch_tokens is None:
        batch_tokens = DEFAULT_BATCH_TOKENS if device.type == "cpu" else GPU_BATCH_TOKENS
    if batch_tokens < 1 or row_width < 1:
        raise ValueError(
            f"batch_tokens and row_width must be positive ({batch_tokens}, {row_width})"
        )
    return batch_tokens


def _capture_for(
    layers: tuple[int, ...], poolings: tuple[str, ...], n_texts: int, hidden_size: int
) -> Capture:
    """Zeroed (layer, text, hidden) arrays per pooling, filled by the hooks."""
    return Capture(
        arrays={
            p: np.zeros((len(layers), n_texts, hidden_size), dtype=np.float32) for p in poolings
        },
        layer_pos={layer: i for i, layer in enumerate(layers)},
        deepest=max(layers),
    )


def _thread_count(
    num_threads: int | str | None, parts: DecoderParts, hidden_size: int, batch_tokens: int
) -> int:
    """``num_threads`` as an int: "auto" is chosen per model, None keeps torch's setting."""
    if num_threads == "auto":
        return int(choose_num_threads(parts, hidden_size, batch_tokens))
    if num_threads is None:
        return torch.get_num_threads()
    return int(num_threads)


def _run_batches(
    parts: DecoderParts,
    layouts: Iterator[BatchLayout],
    capture: Capture,
    device: torch.device,
    bar: tqdm,
) -> int:
    """Run every batch through the hooked model; returns the positions run (padding included)."""
    positions = 0
    for layout in layouts:
        capture.layout = layout.to(device)
        positions += layout.input_ids.numel()
        run_forward(parts, capture.layout)
        bar.update(layout.n_real)
    return positions


def _token_ids(
    tokenizer: Any, texts: list[str], template: str, system_prompt: str | None, limit: int
) -> tuple[list[list[int]], int]:
    """Prompt token ids, each at most ``limit`` long, and how many were cut."""
    prompts = build_prompts(tokenizer, texts, template, system_prompt)
    sequences = tokenize_prompts(tokenizer, prompts, chat=system_prompt is not None)
    return truncate_sequences(sequences, limit)


def _pad_id(tokenizer: Any) -> int:
    """Padding is never attended to or pooled; any valid id works."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def _plan_layouts(
    loaded: LoadedModel,
    sequences: list[list[int]],
    pad_id: int,
    batch_tokens: int,
    packing: bool,
    row_width: int,
    padding_side: str,
) -> tuple[int, Iterator[BatchLayout], str]:
    """(number of batches, their layouts built lazily, a description of the layout)."""
    lengths = [len(s) for s in sequences]
    if packing and len(sequences) > 1 and packing_matches_padding(loaded, sequences, pad_id):
        plan = plan_packed_batches(lengths, batch_tokens, row_width)
        # indices are global, so `rows` index `sequences` directly
        packed = (packed_layout(sequences, rows, pad_id) for rows in plan)
        return len(plan), packed, f"packed (rows of >= {row_width})"
    batches = plan_batches(lengths, batch_tokens)
    padded = (
        padded_layout([sequences[i] for i in rows], rows, pad_id, padding_side) for rows in batches
    )
    return len(batches), padded, f"padded ({padding_side})"


def _meta(
    loaded: LoadedModel,
    template: str,
    system_prompt: str | None,
    poolings: tuple[str, ...],
    n_texts: int,
    n_tokens: int,
) -> dict[str, Any]:
    """What identifies an extraction's numbers, for provenance."""
    return {
        "model_id": loaded.name,
        "revision": loaded.revision,
        "weights_hash": loaded.weights_hash,
        "random_init": loaded.random_init,
        "seed": loaded.seed,
        "dtype": loaded.dtype,
        "device": loaded.device,
        "template": template,
        "system_prompt": system_prompt,
        "poolings": list(poolings),
        "n_texts": n_texts,
        "n_tokens": n_tokens,
    }
