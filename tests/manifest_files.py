"""Small data manifests written by tests (the TOML format of data/manifest.toml)."""

from pathlib import Path


def write_manifest(path: Path, entries: dict[str, dict]) -> Path:
    """Write ``{name: fields}`` as ``[files.<name>]`` tables; ints stay ints, the rest strings."""
    lines = []
    for name, fields in entries.items():
        lines.append(f"[files.{name}]")
        for key, value in fields.items():
            lines.append(f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def entry(url: str, mirror_path: str, **extra) -> dict:
    """A manifest entry with the required fields (licence and citation "test")."""
    return {"url": url, "mirror_path": mirror_path, "licence": "test", "citation": "test", **extra}
