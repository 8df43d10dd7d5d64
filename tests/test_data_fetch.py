"""The data manifest and the single fetch mechanism (mirror first, then pooch download)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest
from manifest_files import entry, write_manifest
from shared_data import SHARED_DATA, needs_mirror

from moralkit.data import (
    DataChecksumError,
    DataFileNotFoundError,
    fetch,
    file_checksums,
    load_manifest,
)
from moralkit.data.manifest import find_manifest_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MORALKIT_DATA_MIRROR", raising=False)


def test_manifest_lists_the_required_files():
    manifest = load_manifest()
    assert manifest.path == find_manifest_path() == REPO / "data" / "manifest.toml"
    expected = {
        "social-chem-101",
        "social-chem-101-obligatory",
        "social-chem-101-optional",
        *(f"moralstrength-{f}" for f in ("care", "fairness", "loyalty", "authority", "purity")),
        "moralstrength-licence",
        "flames-1k",
        "moralmi-train-buckets",
        "moralmi-val-buckets",
        "emfd",
        "mfd2",
        "mft-original",
    }
    assert expected <= set(manifest.files)
    full = manifest["social-chem-101"]
    assert full.sha256 is None and full.rows == 355_922
    assert full.member == "social-chem-101.v1.0.tsv"
    assert full.url.endswith("/social-chem-101.zip") and "CC BY-SA 4.0" in full.licence
    for item in manifest:
        assert item.url.startswith("https://") and item.licence and item.citation
        assert item.official_url is None or item.official_url.startswith("https://")
        assert item.sha256 is None or len(item.sha256) == 64


def test_unknown_name_lists_known_names():
    with pytest.raises(KeyError, match="moralstrength-care"):
        fetch("no-such-file")


@needs_mirror
def test_manifest_checksums_match_the_mirror_and_its_csv(monkeypatch):
    """Every pinned file in ../shared/data matches the manifest (and ../shared/data's csv)."""
    import csv

    shared = {row["path"]: row for row in csv.DictReader(open(SHARED_DATA / "manifest.csv"))}
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(SHARED_DATA))
    manifest = load_manifest()
    pinned = [e for e in manifest if e.sha256]
    assert {e.mirror_path for e in pinned} == set(shared)  # every mirror file, each pinned
    for item in pinned:
        assert shared[item.mirror_path]["sha256"] == item.sha256
        assert shared[item.mirror_path]["url"] == item.url
        assert fetch(item.name) == SHARED_DATA / item.mirror_path  # read in place
    sums = file_checksums(["moralstrength-care", "flames-1k"])
    assert sums == {
        "moralstrength-care": "aba0be683bf780639a146ad31b66b5573b77ec7c53a3e324f04023d33ba4137e",
        "flames-1k": "f53400dcbb8795fb262993bda0615afdc77de1c4685e7c94d2df2a3cd47613fa",
    }


def test_mirror_checksum_mismatch_is_an_error(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    (mirror / "sub" / "file.txt").write_text("tampered")
    good = hashlib.sha256(b"original").hexdigest()
    manifest = load_manifest(
        write_manifest(
            tmp_path / "m.toml",
            {"thing": entry("https://example.invalid/file.txt", "sub/file.txt", sha256=good)},
        )
    )
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(mirror))
    with pytest.raises(DataChecksumError, match="checksum mismatch for data file 'thing'"):
        fetch("thing", manifest)


def test_missing_everywhere_names_file_mirror_and_url(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/nothing/here.csv"  # port 9 (discard): refused at once, offline
    manifest = load_manifest(
        write_manifest(
            tmp_path / "m.toml", {"ghost": entry(url, "ghosts/here.csv", sha256="0" * 64)}
        )
    )
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(DataFileNotFoundError) as err:
        fetch("ghost", manifest)
    message = str(err.value)
    assert "'ghost'" in message and url in message
    assert str(tmp_path / "mirror" / "ghosts" / "here.csv") in message
    monkeypatch.delenv("MORALKIT_DATA_MIRROR")
    with pytest.raises(DataFileNotFoundError, match="MORALKIT_DATA_MIRROR is not set"):
        fetch("ghost", manifest)
    assert not list((tmp_path / "cache").rglob("here.csv"))  # nothing half-written


@pytest.fixture
def local_server(tmp_path):
    """A throw-away HTTP server on localhost serving tmp_path/www (no internet involved)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_into_cache_verifies_and_reuses(tmp_path, local_server):
    root, base = local_server
    (root / "data.csv").write_text("a,b\n1,2\n")
    sha = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    manifest = load_manifest(
        write_manifest(
            tmp_path / "m.toml",
            {
                "good": entry(f"{base}/data.csv", "x/data.csv", sha256=sha),
                "bad": entry(f"{base}/data.csv", "x/other.csv", sha256="1" * 64),
            },
        )
    )
    path = fetch("good", manifest)
    assert path == tmp_path / "cache" / "downloads" / "good" / "data.csv"
    assert path.read_text() == "a,b\n1,2\n"
    (root / "data.csv").unlink()  # the second call must not need the server
    assert fetch("good", manifest) == path
    assert file_checksums(["good"], manifest) == {"good": sha}

    (root / "data.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataChecksumError, match="'bad'"):
        fetch("bad", manifest)
    assert not (tmp_path / "cache" / "downloads" / "bad" / "other.csv").exists()


def test_unpinned_file_is_checked_by_size(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    shutil.copy(Path(__file__), mirror / "x.py")
    size = (mirror / "x.py").stat().st_size
    manifest = load_manifest(
        write_manifest(
            tmp_path / "m.toml",
            {
                "right": entry("https://example.invalid/x.py", "x.py", bytes=size),
                "wrong": entry("https://example.invalid/x.py", "x.py", bytes=size + 1),
            },
        )
    )
    monkeypatch.setenv("MORALKIT_DATA_MIRROR", str(mirror))
    assert fetch("right", manifest) == mirror / "x.py"
    with pytest.raises(DataChecksumError, match="size mismatch"):
        fetch("wrong", manifest)


def test_bad_manifest_entry_is_reported(tmp_path):
    path = write_manifest(tmp_path / "m.toml", {"x": {"url": "https://a", "colour": "red"}})
    with pytest.raises(ValueError, match="unknown fields \\['colour'\\]"):
        load_manifest(path)
