"""Pooled residual-stream activations, fast, and cached on disk.

(paper §2.1, §4.1; book: Methods › Activations, methods/activations.md.) The package by job:

- :mod:`~moralkit.activations.prompts`: input checks, template, tokenisation, truncation;
- :mod:`~moralkit.activations.batching`: packed and padded batch layouts;
- :mod:`~moralkit.activations.hooks`: forward hooks that pool after decoder blocks;
- :mod:`~moralkit.activations.extract`: :func:`extract_activations` on a loaded model;
- :mod:`~moralkit.activations.store`: cache keys, entries, integrity, layer-subset lookup;
- :mod:`~moralkit.activations.cache`: :func:`cached_activations`, what chapters call.

Layers arrive resolved: 0-based indices (``None``: every layer). A layer spec in the one grammar
of :class:`moralkit.layers.LayerSpec` is parsed where a parameter enters and resolved against
:func:`moralkit.models.model_depth` once per model (``Chapter.layers``), never here.
"""

from moralkit.activations.batching import (
    BatchLayout,
    last_token_index,
    official_last_token_index,
    packed_layout,
    pad_batch,
    padded_layout,
    plan_batches,
    plan_packed_batches,
    position_ids_from_mask,
)
from moralkit.activations.cache import cached_activations
from moralkit.activations.extract import (
    DEFAULT_BATCH_TOKENS,
    DEFAULT_ROW_WIDTH,
    GPU_BATCH_TOKENS,
    extract_activations,
)
from moralkit.activations.hooks import capture_layers, packing_matches_padding, pool_flat
from moralkit.activations.prompts import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPLATE,
    build_prompts,
    check_texts,
    tokenize_prompts,
)
from moralkit.activations.store import (
    CACHE_FORMAT_VERSION,
    CorruptCacheEntry,
    activation_cache_dir,
    cache_key,
    texts_hash,
)
from moralkit.threads import choose_num_threads

__all__ = [
    "CACHE_FORMAT_VERSION",
    "DEFAULT_BATCH_TOKENS",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_ROW_WIDTH",
    "DEFAULT_TEMPLATE",
    "GPU_BATCH_TOKENS",
    "BatchLayout",
    "CorruptCacheEntry",
    "activation_cache_dir",
    "build_prompts",
    "cache_key",
    "cached_activations",
    "capture_layers",
    "check_texts",
    "choose_num_threads",
    "extract_activations",
    "last_token_index",
    "official_last_token_index",
    "packed_layout",
    "packing_matches_padding",
    "pad_batch",
    "padded_layout",
    "plan_batches",
    "plan_packed_batches",
    "pool_flat",
    "position_ids_from_mask",
    "texts_hash",
    "tokenize_prompts",
]
