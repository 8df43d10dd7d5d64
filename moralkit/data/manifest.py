"""The data manifest: for each input file, where it comes from and how to verify it.

The manifest is ``data/manifest.toml`` at the repository top (paper §1.1 names the
sources). It lists URLs, checksums, licences and citations, never the data itself.

Where the file is looked for, in order:

1. ``<repository>/data/manifest.toml`` next to the package (a source checkout or an
   editable install);
2. ``<sys.prefix>/share/moralkit/manifest.toml`` (a wheel: pyproject.toml installs the file
   there with ``[tool.setuptools.data-files]``).

``$MORALKIT_MANIFEST_OVERLAY`` may name a TOML file of ``[files.<name>]`` tables that replace
the package manifest's entries of the same name (or add entries): another URL for a file (a
private server, a newer release), with the row count or hash that verifies it.
"""

from __future__ import annotations

import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

MANIFEST_FILENAME = "manifest.toml"
OVERLAY_ENV = "MORALKIT_MANIFEST_OVERLAY"


@dataclass(frozen=True)
class DataFile:
    """One manifest entry: a file moralkit can fetch and verify."""

    name: str
    url: str
    mirror_path: str
    licence: str
    citation: str
    sha256: str | None = None
    bytes: int | None = None
    rows: int | None = None
    member: str | None = None
    official_url: str | None = None
    notes: str = ""

    @property
    def filename(self) -> str:
        """Base name of the file (the last part of ``mirror_path``)."""
        return Path(self.mirror_path).name


@dataclass(frozen=True)
class Manifest:
    """All manifest entries, keyed by name, plus the file they were read from."""

    files: dict[str, DataFile]
    path: Path

    def __getitem__(self, name: str) -> DataFile:
        try:
            return self.files[name]
        except KeyError:
            raise KeyError(
                f"no data file named {name!r} in the manifest {self.path}; "
                f"known names: {sorted(self.files)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.files

    def __iter__(self):
        return iter(self.files.values())


def find_manifest_path() -> Path:
    """Locate ``manifest.toml`` for a source checkout or an installed wheel (see module doc)."""
    candidates = [
        Path(__file__).resolve().parents[2] / "data" / MANIFEST_FILENAME,
        Path(sys.prefix) / "share" / "moralkit" / MANIFEST_FILENAME,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "moralkit's data manifest was not found; looked at " + ", ".join(str(c) for c in candidates)
    )


def load_manifest(path: str | Path | None = None) -> Manifest:
    """Read and validate a data manifest (default: the package's own, with the overlay of
    ``$MORALKIT_MANIFEST_OVERLAY`` when set; see the module doc)."""
    if path is not None:
        return Manifest(files=_read_entries(Path(path)), path=Path(path))
    package = find_manifest_path()
    files = _read_entries(package)
    overlay = os.environ.get(OVERLAY_ENV)
    if overlay:
        files.update(_read_entries(Path(overlay).expanduser()))
    return Manifest(files=files, path=package)


def _read_entries(path: Path) -> dict[str, DataFile]:
    if not path.is_file():
        raise FileNotFoundError(f"data manifest {path} does not exist")
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    entries = raw.get("files")
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"data manifest {path} has no [files.<name>] tables")
    known = set(DataFile.__dataclass_fields__) - {"name"}
    files: dict[str, DataFile] = {}
    for name, fields in entries.items():
        unknown = set(fields) - known
        missing = {"url", "mirror_path", "licence", "citation"} - set(fields)
        if unknown or missing:
            raise ValueError(
                f"manifest {path}, entry {name!r}: unknown fields {sorted(unknown)}, "
                f"missing fields {sorted(missing)}"
            )
        files[name] = DataFile(name=name, **fields)
    return files
