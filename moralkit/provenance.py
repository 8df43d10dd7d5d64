"""Provenance of a chapter run: software, hardware, git state, data and model fingerprints.

Every chapter page ends with the Markdown table built here, and writes the same facts to
``provenance.json`` for the book's status page.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

from moralkit.io import atomic_write_text
from moralkit.paths import cache_root

REPO_ROOT = Path(__file__).resolve().parents[1]


def package_version(name: str) -> str:
    """Installed version of a distribution, or "not installed"."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_state(repo: str | Path | None = None) -> dict:
    """``{"commit": sha or None, "dirty": bool or None}`` of the moralkit checkout."""
    repo = Path(repo or REPO_ROOT)

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def describe_device(device: str | None = None) -> str:
    """The GPU name when ``device`` is CUDA and one is visible, else the CPU model and cores."""
    if device and str(device).startswith("cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return f"GPU {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
        except ImportError:
            pass
    return f"CPU {cpu_model()} ({os.cpu_count()} cores)"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory_mb() -> float:
    """Peak resident memory of this process in MiB (``getrusage`` maxrss; KiB on Linux)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def peak_gpu_memory_mb() -> float | None:
    """Peak CUDA memory allocated by torch in MiB, or None without CUDA."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    return None


def software_versions() -> dict:
    """Versions of Python and the libraries whose behaviour changes results."""
    from moralkit import __version__

    return {
        "moralkit": __version__,
        "python": platform.python_version(),
        "torch": package_version("torch"),
        "transformers": package_version("transformers"),
        "numpy": package_version("numpy"),
        "scikit-learn": package_version("scikit-learn"),
    }


def environment_provenance(device: str | None = None) -> dict:
    """Software versions, git state, host and device, in one dict."""
    return {
        "versions": software_versions(),
        "git": git_state(),
        "platform": platform.platform(),
        "device": describe_device(device),
    }


#: cache folders a run writes whether or not it computed anything (judge logs)
_LOG_DIRS = ("inspect-logs",)


def cache_files() -> set[str]:
    """Every file in moralkit's cache (``$MORALKIT_CACHE``) but run logs, relative to it.

    A chapter that finds this set grown after it ran computed (and cached) something: a cold
    run. One listing of a few hundred files; no file is read.
    """
    root = cache_root()
    if not root.is_dir():
        return set()
    return {
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).parts[0] not in _LOG_DIRS
    }


def to_jsonable(value: object) -> object:
    """Convert numpy scalars, paths, tuples and sets so ``json.dumps`` accepts them."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def write_json(data: Mapping, path: str | Path) -> Path:
    """Write a dict as pretty JSON atomically."""
    return atomic_write_text(json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n", path)


def _cell(value: object) -> str:
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, float):
        value = f"{value:.4g}"
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _layer_list(model: Mapping) -> str:
    layers = list(model.get("layers") or [])
    if layers and layers == list(range(int(model.get("n_layers") or 0))):
        return "all"
    return ", ".join(str(x) for x in layers) or "?"


def _extraction_settings(model: Mapping) -> str:
    """``dtype bfloat16 on cuda, poolings mean, last, template '...'; `` (what was set)."""
    parts = []
    if model.get("dtype"):
        device = f" on {model['device']}" if model.get("device") else ""
        parts.append(f"dtype {model['dtype']}{device}")
    if model.get("poolings"):
        parts.append(f"poolings {', '.join(str(p) for p in model['poolings'])}")
    if model.get("template"):
        parts.append(f"template '{model['template']}'")
    return "".join(f"{p}; " for p in parts)


def format_git(git: Mapping) -> str:
    """``abc1234 (dirty)`` / ``no commit``."""
    commit = git.get("commit")
    if not commit:
        return "no commit (not a git checkout or no commits yet)"
    return f"{commit[:12]}{' (dirty)' if git.get('dirty') else ''}"


def _model_cell(model: Mapping) -> str:
    """One model's identity, plus how its activations were read or how it was loaded."""
    label = model.get("name")
    text = (
        f"{model.get('model_id', label)} @ {model.get('revision') or 'unknown revision'}; "
        f"weights sha256 {str(model.get('weights_hash') or 'unknown')[:16]}; "
    )
    if "load_s" in model:  # run by the chapter itself (steering, neurons, pruning)
        return text + (
            f"{model.get('n_layers', '?')} layers; {model.get('dtype')} on "
            f"{model.get('device')}; loaded in {model['load_s']:.1f} s"
        )
    return text + (
        f"{model.get('n_layers', '?')} layers, read {_layer_list(model)}; "
        f"{model.get('n_texts', '?')} texts; {_extraction_settings(model)}cache "
        f"{'hit' if model.get('cache_hit') else 'miss'}"
        f" ({str(model.get('cache_key') or 'no key')[:16]}); "
        f"extraction {model.get('extraction_s', 0):.1f} s"
    )


def provenance_markdown(prov: Mapping) -> str:
    """The provenance block shown at the end of every chapter, as a Markdown table."""
    rows: list[tuple[str, object]] = [
        ("chapter", prov.get("chapter")),
        ("profile", prov.get("profile")),
        ("status", prov.get("status")),
    ]
    for name, value in (prov.get("params") or {}).items():
        if name == "profile":
            continue
        rows.append((f"parameter `{name}`", value))
    for model in prov.get("models") or []:
        label = model.get("name")
        variant = f" ({model['variant']})" if model.get("variant") else ""
        rows.append((f"model `{label}`{variant}", _model_cell(model)))
    for data in prov.get("data") or []:
        checks = data.get("checksums") or {}
        text = "; ".join(f"{Path(k).name} sha256 {str(v)[:16]}" for k, v in checks.items())
        rows.append(
            (
                f"data `{data.get('ground_truth')}`",
                f"{data.get('n_records', '?')} records; {text or 'no checksums recorded'}",
            )
        )
    versions = prov.get("versions") or {}
    rows += [
        ("moralkit", versions.get("moralkit")),
        ("git commit", format_git(prov.get("git") or {})),
        (
            "python / torch / transformers",
            f"{versions.get('python')} / {versions.get('torch')} / {versions.get('transformers')}",
        ),
        ("device", prov.get("device")),
        ("started (UTC)", prov.get("started")),
        ("wall time", f"{prov.get('wall_time_s', 0):.1f} s"),
        ("peak memory (maxrss)", f"{prov.get('peak_memory_mb', 0):.0f} MiB"),
    ]
    if prov.get("peak_gpu_memory_mb") is not None:
        rows.append(("peak GPU memory", f"{prov['peak_gpu_memory_mb']:.0f} MiB"))
    lines = ["| item | value |", "|---|---|"]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]
    return "\n".join(lines) + "\n"
