"""Where moralkit reads and writes on disk: the cache root and the data mirror, resolved here once.

Every package reads these two places through this module (it imports nothing of moralkit, so
the lowest floor of the layering can use it; book: Methods › Data, methods/data.md):

- ``$MORALKIT_CACHE`` (default ``~/.cache/moralkit``): the cache root. Each kind of cached
  thing has its own folder under it (``downloads``, ``records``, ``activations``, ``models``,
  ``sae``, ``generations``, ``behaviour``, ``pruning``...), see :func:`cache_dir`.
- ``$MORALKIT_DATA_MIRROR``: a local folder laid out like the manifest's ``mirror_path``
  column, read before any download (:func:`moralkit.data.fetch.fetch`). A relative value is
  resolved once, where it is first read, and written back as an absolute path
  (:func:`resolve_mirror`), so kernels and workflow jobs in other folders read the same one.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MORALKIT_CACHE"
MIRROR_ENV = "MORALKIT_DATA_MIRROR"


def cache_root() -> Path:
    """moralkit's cache folder: ``$MORALKIT_CACHE`` or ``~/.cache/moralkit``."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "moralkit"


def cache_dir(name: str, override: str | Path | None = None) -> Path:
    """The folder of one kind of cache: ``override`` when given, else ``<cache root>/<name>``."""
    return Path(override).expanduser() if override is not None else cache_root() / name


class DataMirrorError(FileNotFoundError):
    """``$MORALKIT_DATA_MIRROR`` names a folder that does not exist."""


def resolve_mirror(base: str | Path | None = None) -> Path | None:
    """``$MORALKIT_DATA_MIRROR`` as an absolute folder, written back to the environment.

    A relative value is taken against ``base`` (default: the current folder). Raises
    :class:`DataMirrorError` naming the variable, its value and the folder it resolved to when
    that is not a folder. None when the variable is unset or empty.
    """
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    path = (Path(base or Path.cwd()) / path).resolve() if not path.is_absolute() else path
    if not path.is_dir():
        shown = value if str(path) == value else f"{value} (resolved to {path})"
        raise DataMirrorError(
            f"{MIRROR_ENV}={shown} is not a folder. Set it to the folder holding the data "
            "mirror (an absolute path, or one relative to the folder you start in), or unset "
            "it to download the files from their manifest URLs"
        )
    os.environ[MIRROR_ENV] = str(path)  # kernels and jobs in other folders read the same one
    return path


def mirror_dir() -> Path | None:
    """The local mirror folder named by ``$MORALKIT_DATA_MIRROR`` (None when unset); see
    :func:`resolve_mirror`."""
    return resolve_mirror()
