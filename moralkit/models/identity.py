"""What a model is, known without loading its weights: identity (for cache keys) and depth.

- :func:`model_identity`: model id, revision and a hash of the weights. Offline models: the
  GGUF's sha256. Tiny models: a hash of their config and seed. Local folders and hub ids: the
  weight files' hashes when the files are on disk (hub: already downloaded).
- :func:`model_depth`: the number of decoder layers, the ONE source every layer spec is
  resolved against (the checkpoint's config when it is on disk, else the registry, else the
  hub's config; weights never read).

(paper §2.1, §3.1; book: Methods › Activations, methods/activations.md)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moralkit.models import hub
from moralkit.models.hub import ModelNotAvailableError
from moralkit.models.offline import offline_revision, offline_weights_hash
from moralkit.models.registry import describe_available_models, find_model_spec
from moralkit.models.storage import fingerprint_file

if TYPE_CHECKING:
    from transformers import PreTrainedConfig

WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
_LFS_BLOB = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelIdentity:
    """What identifies a model's weights, known without loading them (cache keys use it)."""

    model_id: str
    revision: str
    weights_hash: str
    n_layers: int
    hidden_size: int


def model_depth(name_or_path: str) -> int:
    """Number of decoder layers of a registry model, tiny test model, hub id or local folder.

    A hub model whose ``config.json`` is already in the local Hugging Face cache answers from
    it: the checkpoint that will be loaded, not the registry's (hand-written) count. Other
    registry models (tiny ones included) answer from the registry; anything else from its
    ``config.json`` (a few kB, never the weights). Raises :class:`ModelNotAvailableError` when
    the config cannot be found.
    """
    spec = find_model_spec(str(name_or_path))
    if spec is not None and spec.hf_id and spec.offline is None:
        cached = cached_hub_config(spec.hf_id)
        if cached is not None:
            return int(cached.get("text_config", cached)["num_hidden_layers"])
    if spec is not None:
        return int(spec.n_layers)
    return int(model_config(str(name_or_path)).get_text_config().num_hidden_layers)


def cached_hub_file(repo_id: str, filename: str, revision: str | None = None) -> Path | None:
    """The path of a hub model's file when the local hub cache holds it (no network), else None."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename, revision=revision)
    return Path(path) if isinstance(path, str) else None  # None, or a "known missing" marker


def cached_hub_config(repo_id: str, revision: str | None = None) -> dict | None:
    """The ``config.json`` of a hub model as a dict when the local hub cache holds it (no
    network, no transformers import), else None."""
    path = cached_hub_file(repo_id, "config.json", revision)
    return None if path is None else json.loads(path.read_text(encoding="utf-8"))


def model_config(name_or_path: str, revision: str | None = None) -> PreTrainedConfig:
    """The transformers config of a model (tiny, offline, local folder or hub id); no weights."""
    from transformers import AutoConfig

    spec = find_model_spec(name_or_path)
    if spec is not None and spec.is_test:
        from moralkit.models.tiny import tiny_config

        return tiny_config(spec.name)
    if spec is not None and spec.offline is not None:
        from moralkit.models.offline import offline_model_folder

        return AutoConfig.from_pretrained(offline_model_folder(spec))
    local = local_folder(name_or_path)
    if local is not None:
        return AutoConfig.from_pretrained(local)
    hf_id = spec.hf_id if spec is not None and spec.hf_id else name_or_path
    try:
        return AutoConfig.from_pretrained(
            hf_id, revision=revision, local_files_only=hub.local_files_only()
        )
    except Exception as err:  # noqa: BLE001 - hub/network/unknown-id errors vary widely
        raise not_available(name_or_path, err) from err


def model_identity(name_or_path: str, revision: str | None = None) -> ModelIdentity | None:
    """Identify a model's weights without loading it; None when that needs a load."""
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
    local = local_folder(name_or_path)
    if local is not None:
        return _folder_identity(local, str(local), "local")
    hf_id = spec.hf_id if spec is not None else name_or_path
    model_id = spec.name if spec is not None else name_or_path
    return _hub_identity(hf_id, model_id, revision)


def local_folder(name_or_path: str) -> Path | None:
    """The resolved folder when ``name_or_path`` is an existing directory, else None."""
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
        config_path = cached_file(
            hf_id, "config.json", revision=revision, local_files_only=hub.local_files_only()
        )
    except Exception:  # noqa: BLE001 - no network / unknown id: the load will explain
        return None
    if config_path is None:
        return None
    snapshot = Path(config_path).parent
    commit = snapshot.name if snapshot.parent.name == "snapshots" else (revision or "unknown")
    return _folder_identity(snapshot, model_id, commit)


def not_available(name: str, err: Exception) -> ModelNotAvailableError:
    """The error for a model that cannot be obtained: why, and which ids work offline."""
    spec = find_model_spec(name)
    reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    status = hub.hub_status()
    if status:
        reason = f"{status}; {reason}"
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
