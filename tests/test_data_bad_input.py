"""Bad data input (issue 7, table B rows 3, 8, 9): stale caches, bad files, corrupt downloads."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from manifest_files import entry, write_manifest

from moralkit.data import (
    CorruptCacheError,
    DataFileError,
    fetch,
    load_manifest,
    load_records,
)
from moralkit.data.manifest import Manifest
from moralkit.data.moral_strength import MORALSTRENGTH_FILES
from moralkit.data.reading import read_table

HEADER = "WORD\tEXPRESSED_MORAL\n"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MORALKIT_DATA_MIRROR", raising=False)


def lexicon_mirror(
    root: Path, ratings: dict[str, str], raw: dict[str, bytes] | None = None
) -> tuple[Path, Path]:
    """Five small MoralStrength-like files and a manifest pinning them by size only.

    ``raw`` replaces a file's bytes after the manifest is written (its size is then not
    checked: the content, not the size, is what a test makes wrong).
    """
    mirror = root / "mirror"
    entries = {}
    for foundation, name in MORALSTRENGTH_FILES.items():
        path = mirror / "ms" / f"{foundation}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + ratings.get(foundation, "calm\t5.0\n"))
        entries[name] = entry(f"https://example.invalid/{foundation}.tsv", f"ms/{foundation}.tsv")
        if raw and foundation in raw:
            path.write_bytes(raw[foundation])
        else:
            entries[name]["bytes"] = path.stat().st_size
    return mirror, write_manifest(root / "manifest.toml", entries)


def edit_in_place_keeping_size_and_mtime(path: Path, old: bytes, new: bytes) -> None:
    """What ``cp -p`` / ``rsync -t`` / ``tar x`` leave behind: new bytes, same size and mtime."""
    assert len(old) == len(new)
    stat = path.stat()
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns


# ------------------------------------------------------------------ B#3: content-keyed caches
def test_read_table_sees_an_in_place_edit_with_same_size_and_mtime(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text(HEADER + "kind\t8.0\ncruel\t1.5\n")
    first = read_table(path, ["WORD", "EXPRESSED_MORAL"], sep="\t")
    assert first["WORD"].tolist() == ["kind", "cruel"]
    edit_in_place_keeping_size_and_mtime(path, b"cruel\t1.5", b"brave\t7.5")
    second = read_table(path, ["WORD", "EXPRESSED_MORAL"], sep="\t")
    assert second["WORD"].tolist() == ["kind", "brave"]
    assert second["EXPRESSED_MORAL"].tolist() == ["8.0", "7.5"]


def test_load_records_never_returns_stale_records(tmp_path, monkeypatch):
    mirror, manifest_path = lexicon_mirror(tmp_path, {"care": "kind\t9.0\ncruel\t1.0\n"})
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(mirror))
    manifest = load_manifest(manifest_path)
    before = load_records("moralstrength", manifest=manifest).table.set_index("text")
    assert before.loc["cruel", "category"] == "harm"
    edit_in_place_keeping_size_and_mtime(mirror / "ms" / "care.tsv", b"cruel\t1.0", b"bravo\t9.0")
    after = load_records("moralstrength", manifest=manifest)
    texts = after.table.set_index("text")
    assert "cruel" not in texts.index
    assert texts.loc["bravo", "category"] == "care" and texts.loc["bravo", "typicality"] == 1.0
    care = mirror / "ms" / "care.tsv"
    assert (
        after.provenance["files"]["moralstrength-care"]
        == hashlib.sha256(care.read_bytes()).hexdigest()
    )
    records = list((tmp_path / "cache" / "records").glob("moralstrength-*.parquet"))
    assert len(records) == 2  # one entry per content, the old one never served again


# ------------------------------------------------------------------ B#8: bad files, named
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty \\(0 bytes\\)"),
        (b"\n\n  \n", "holds only blank lines"),
        (HEADER.encode(), "has a header but no data rows"),
        (HEADER.encode() + b"caf\xe9\t5.0\n", "is not valid UTF-8: byte 0xe9 at offset 24"),
    ],
    ids=["empty", "blank", "header-only", "latin-1"],
)
def test_bad_file_is_named_with_its_problem(tmp_path, content, problem):
    path = tmp_path / "bad.tsv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=f"data file .*bad.tsv {problem}"):
        read_table(path, ["WORD", "EXPRESSED_MORAL"], sep="\t")


@pytest.mark.parametrize("content", [b"", HEADER.encode(), HEADER.encode() + b"\xff\xfe\t5\n"])
def test_load_records_names_the_bad_file(tmp_path, monkeypatch, content):
    mirror, manifest_path = lexicon_mirror(tmp_path, {}, raw={"loyalty": content})
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(mirror))
    with pytest.raises(DataFileError) as err:
        load_records("moralstrength", manifest=load_manifest(manifest_path))
    message = str(err.value)
    assert "moralstrength-loyalty" in message and "loyalty.tsv" in message
    assert any(p in message for p in ("empty", "no data rows", "not valid UTF-8"))


# ------------------------------------------------------------------ B#9: corrupt cached download
OFFLINE_URL = "http://127.0.0.1:9/data.csv"  # port 9 (discard): refused at once, offline


def offline_download(tmp_path: Path, good: bytes) -> tuple[Manifest, Path]:
    """A manifest whose entry "thing" is pinned to ``good`` at an unreachable URL, and where
    the download cache keeps its copy (not written yet)."""
    sha = hashlib.sha256(good).hexdigest()
    path = write_manifest(
        tmp_path / "m.toml", {"thing": entry(OFFLINE_URL, "x/data.csv", sha256=sha)}
    )
    cached = tmp_path / "cache" / "downloads" / "thing" / "data.csv"
    cached.parent.mkdir(parents=True)
    return load_manifest(path), cached


def test_corrupt_cached_download_offline_is_moved_aside_and_reported(tmp_path):
    good = b"a,b\n1,2\n"
    manifest, cached = offline_download(tmp_path, good)
    cached.write_bytes(b"a,b\n1,3\n")  # bit rot in the cache
    with pytest.raises(CorruptCacheError) as err:
        fetch("thing", manifest)
    message = str(err.value)
    assert "the cached copy fails its checksum" in message
    assert f"moved aside to {cached}.corrupt" in message
    assert "fresh download from" in message and OFFLINE_URL in message and "failed" in message
    assert not cached.exists()
    assert Path(f"{cached}.corrupt").read_bytes() == b"a,b\n1,3\n"  # kept, never deleted


def test_valid_cached_download_is_used_offline(tmp_path):
    good = b"a,b\n1,2\n"
    manifest, cached = offline_download(tmp_path, good)
    cached.write_bytes(good)
    assert fetch("thing", manifest) == cached
