""":func:`cached_activations`: extraction behind a content-addressed disk cache.

Chapters that share records and a model reuse one extraction; a request for some of the layers
of a cached entry reads that entry; a cache hit never loads the model (its identity comes from
the GGUF or weight-file hashes). Before any expensive work the cache folder is proven writable,
and temp folders left by killed writers are removed. (paper §2.1; book: Methods › Activations,
methods/activations.md.)
"""

from __future__ import annotations

import platform
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moralkit.activation_set import ActivationSet
from moralkit.activations import store
from moralkit.activations.extract import extract_activations
from moralkit.activations.prompts import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_TEMPLATE,
    check_max_tokens,
    check_poolings,
    check_texts,
)
from moralkit.io import clean_stale_temporaries, ensure_writable
from moralkit.layers import check_layer_indices, layer_indices
from moralkit.models import loading
from moralkit.models.identity import ModelIdentity, model_identity
from moralkit.models.loading import LoadedModel, normalise_dtype
from moralkit.paths import CACHE_ENV

_UNWRITABLE_HINT = (
    f"set {CACHE_ENV} (or pass cache_dir=) to a writable folder; nothing was extracted"
)


# Long only in its signature and docstring (every extraction setting, documented once); the body
# is one linear pipeline: check, identify, look up, extract what is missing, select rows/layers.
def cached_activations(
    model: str | LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    poolings: Sequence[str] | str = ("mean", "last"),
    template: str = DEFAULT_TEMPLATE,
    system_prompt: str | None = None,
    dtype: str = "float32",
    cache_dir: str | Path | None = None,
    random_init: bool = False,
    seed: int = 0,
    device: str = "cpu",
    batch_tokens: int | None = None,
    num_threads: int | str | None = "auto",
    progress: bool = True,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> ActivationSet:
    """:func:`extract_activations` behind a content-addressed disk cache (paper §2.1; book:
    Methods › Activations, methods/activations.md).

    ``model`` is a registry name, hub id, local folder or a :class:`LoadedModel`; ``texts`` a
    list of str (TypeError otherwise); ``layers`` resolved 0-based indices (``None``: every
    layer), checked against the model's depth and never parsed: resolve a layer spec first
    (``Chapter.layers``, :meth:`~moralkit.layers.LayerSpec.resolve`). Texts are deduplicated;
    rows of the result follow ``texts``. An entry holding all requested layers (e.g. all of
    them) serves the request without loading the model; otherwise only the missing layers are
    extracted and merged into a new entry. A corrupt entry is reported and recomputed.
    ``meta`` carries model id, revision, weights hash, dtype, template, system prompt, timing,
    ``n_truncated`` (texts cut to ``max_tokens``), cache key, entry and hit/miss. Raises
    PermissionError naming ``MORALKIT_CACHE`` before extracting when the cache folder is not
    writable.
    """
    started = time.perf_counter()
    texts = check_texts(texts)
    chosen_poolings = check_poolings(poolings)
    wanted = layer_indices(layers)  # types checked before any model is loaded
    check_max_tokens(max_tokens, None)
    unique, index = _dedupe(texts)
    root = store.activation_cache_dir(cache_dir)
    clean_stale_temporaries(root)

    loaded, identity, dtype_name, random_init, seed = _identify(
        model, dtype, device, random_init, seed
    )
    chosen_layers = check_layer_indices(wanted, identity.n_layers)
    key = store.cache_key(
        identity,
        unique,
        chosen_poolings,
        template,
        system_prompt,
        dtype_name,
        random_init,
        seed,
        max_tokens,
    )
    acts, base = store.lookup(root, key, chosen_layers)
    hit = acts is not None
    if acts is None:
        ensure_writable(root, _UNWRITABLE_HINT)
        if loaded is None:
            loaded = _load(model, dtype_name, device, random_init, seed)
        fresh = extract_activations(
            loaded,
            unique,
            [x for x in chosen_layers if base is None or x not in base.layers],
            chosen_poolings,
            template,
            system_prompt,
            batch_tokens=batch_tokens,
            num_threads=num_threads,
            progress=progress,
            max_tokens=max_tokens,
        )
        acts = _store(root, key, fresh, base, unique)
    elif acts.meta.get("n_truncated"):
        _warn_truncated(acts.meta)
    result = _rows_and_layers(acts, chosen_layers, index)
    result.meta.update(
        {
            "cache_hit": hit,
            "cache_key": key,
            "cache_entry": str(store.entry_path(root, key, acts.layers)),
            "cache_entry_layers": list(acts.layers),
            "layers": list(chosen_layers),
            "n_texts": len(texts),
            "elapsed_s": round(time.perf_counter() - started, 3),
        }
    )
    return result


def _dedupe(texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct texts in order of first appearance, and each text's row among them."""
    unique = list(dict.fromkeys(texts))
    position = {text: i for i, text in enumerate(unique)}
    index = np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))
    return unique, index


def _rows_and_layers(
    entry: ActivationSet, layers: tuple[int, ...], index: np.ndarray
) -> ActivationSet:
    """The requested rows and layers of a cache entry (each copied once)."""
    if entry.layers != layers:  # a subset of the entry (avoid copying a full one twice)
        entry = entry.select_layers(layers)
    return entry.take(index)


def _store(
    root: Path, key: str, fresh: ActivationSet, base: ActivationSet | None, unique: list[str]
) -> ActivationSet:
    """Write ``fresh`` (merged with the entry ``base`` it extends) and read it back."""
    acts = fresh if base is None else store.merge_layers(base, fresh)
    meta = _entry_meta(fresh, key, unique)
    entry = store.store(root, key, acts, meta)
    stored = store.try_read(entry, key)
    if stored is None:  # another process already replaced it with a superset
        stored = ActivationSet(
            acts.arrays, acts.layers, acts.n_model_layers, acts.model_id, {**acts.meta, **meta}
        )
    return stored


def _warn_truncated(meta: dict[str, Any]) -> None:
    warnings.warn(
        f"{meta['n_truncated']} of the cached prompts were truncated to "
        f"max_tokens={meta.get('max_tokens')} tokens when they were extracted",
        UserWarning,
        stacklevel=3,
    )


def _identify(
    model: str | LoadedModel, dtype: str, device: str, random_init: bool, seed: int
) -> tuple[LoadedModel | None, ModelIdentity, str, bool, int]:
    """(loaded model or None, identity, dtype, random_init, seed): a LoadedModel's own settings win.

    A model whose weights are not on disk yet (hub id) is loaded to identify it.
    """
    if isinstance(model, LoadedModel):
        return model, model.identity, model.dtype, model.random_init, model.seed or 0
    dtype_name = normalise_dtype(dtype)
    identity = model_identity(str(model))
    loaded = None
    if identity is None:
        loaded = _load(model, dtype_name, device, random_init, seed)
        identity = loaded.identity
    return loaded, identity, dtype_name, random_init, seed


def _entry_meta(fresh: ActivationSet, key: str, unique: list[str]) -> dict[str, Any]:
    return {
        **fresh.meta,
        "format": store.CACHE_FORMAT_VERSION,
        "cache_key": key,
        "n_model_layers": fresh.n_model_layers,
        "n_unique": len(unique),
        "texts_sha256": store.texts_hash(unique),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": _versions(),
    }


def _load(model: str, dtype: str, device: str, random_init: bool, seed: int) -> LoadedModel:
    # Looked up on the module so tests can forbid loading by monkeypatching it.
    return loading.load_model(model, dtype=dtype, device=device, random_init=random_init, seed=seed)


def _versions() -> dict[str, str]:
    import transformers

    import moralkit

    return {
        "moralkit": moralkit.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
