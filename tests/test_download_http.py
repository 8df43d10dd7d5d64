"""The download path of :func:`moralkit.data.fetch`, tested offline against 127.0.0.1.

A local HTTP server serves the files; a manifest names them by URL; no mirror is set, so every
file goes through pooch into ``$MORALKIT_CACHE/downloads``. Checked: checksum verification,
the row count of an unpinned zip (like the official Social-Chem-101 release) and clear errors
on truncated downloads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from moralkit.data.fetch import DataChecksumError, DataFileNotFoundError, fetch_with_checksum
from moralkit.data.manifest import load_manifest
from moralkit.data.social_chem import read_social_chem_file
from moralkit.rehearsal.files import FileHandler, serve_files
from moralkit.rehearsal.social_chem import synthetic_zip

N_ROWS = 7
TSV_MEMBER = "social-chem-101.v1.0.tsv"  # the synthetic zip's member, as the release's


class Files(FileHandler):
    """moralkit's file server, misbehaving on request: ``/short/<name>`` lies about its length
    and stops halfway, ``/cut/<name>`` sends half the bytes with no length and closes."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        kind, _, name = self.path.lstrip("/").partition("/")
        if kind not in ("short", "cut") or name not in self.server.files:
            super().do_GET()
            return
        self.server.requests.append(self.path)
        data = self.server.files[name]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if kind == "short":
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.close_connection = True


@pytest.fixture
def server():
    with serve_files(handler=Files) as httpd:
        yield httpd


@pytest.fixture(autouse=True)
def no_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("MORALKIT_DATA_MIRROR", raising=False)
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))


def write_manifest(tmp_path: Path, server, entries: dict[str, dict]) -> Path:
    base = server.base_url
    text = []
    for name, fields in entries.items():
        text.append(f"[files.{name}]")
        fields = {"licence": "test", "citation": "test", **fields}
        fields["url"] = base + fields["url"]
        for key, value in fields.items():
            text.append(f"{key} = {value!r}" if isinstance(value, int) else f'{key} = "{value}"')
        text.append("")
    path = tmp_path / "manifest.toml"
    path.write_text("\n".join(text), encoding="utf-8")
    return path


def pinned(server, tmp_path, url="/lexicon.csv", sha256=None):
    data = b"word,score\nkind,4\ncruel,1\n" * 50
    server.files["lexicon.csv"] = data
    digest = sha256 or hashlib.sha256(data).hexdigest()
    entry = {"url": url, "mirror_path": "lexicon/lexicon.csv", "sha256": digest}
    return load_manifest(write_manifest(tmp_path, server, {"lexicon": entry})), data


def unpinned_zip(server, tmp_path, rows: int, url="/social-chem-101.zip"):
    server.files["social-chem-101.zip"] = synthetic_zip(N_ROWS)
    entry = {"url": url, "mirror_path": "sc/social-chem-101.zip", "rows": rows,
             "member": TSV_MEMBER}  # fmt: skip
    return load_manifest(write_manifest(tmp_path, server, {"social-chem-101": entry}))


def test_pinned_file_is_downloaded_verified_and_reused(server, tmp_path):
    manifest, data = pinned(server, tmp_path)
    path, sha = fetch_with_checksum("lexicon", manifest)
    assert path == tmp_path / "cache" / "downloads" / "lexicon" / "lexicon.csv"
    assert path.read_bytes() == data and sha == hashlib.sha256(data).hexdigest()
    again, _ = fetch_with_checksum("lexicon", manifest)
    assert again == path and server.requests == ["/lexicon.csv"]  # verified, not re-fetched


def test_checksum_mismatch_is_refused(server, tmp_path):
    manifest, _ = pinned(server, tmp_path, sha256="0" * 64)
    with pytest.raises(DataChecksumError, match="lexicon"):
        fetch_with_checksum("lexicon", manifest)
    assert not (tmp_path / "cache" / "downloads" / "lexicon" / "lexicon.csv").exists()


def test_unpinned_zip_is_verified_by_its_row_count(server, tmp_path):
    manifest = unpinned_zip(server, tmp_path, rows=N_ROWS)
    entry = manifest["social-chem-101"]
    path, sha = fetch_with_checksum("social-chem-101", manifest)
    table = read_social_chem_file(path, entry, sha)
    assert len(table) == N_ROWS and table["action"].iloc[-1].endswith(f"(case {N_ROWS - 1})")


def test_unpinned_zip_with_the_wrong_row_count_is_refused(server, tmp_path):
    manifest = unpinned_zip(server, tmp_path, rows=N_ROWS + 1)
    path, sha = fetch_with_checksum("social-chem-101", manifest)
    with pytest.raises(DataChecksumError, match=f"parsed {N_ROWS} data rows.*expects {N_ROWS + 1}"):
        read_social_chem_file(path, manifest["social-chem-101"], sha)


def test_download_shorter_than_its_length_fails_clearly(server, tmp_path):
    manifest, _ = pinned(server, tmp_path, url="/short/lexicon.csv")
    with pytest.raises(DataFileNotFoundError, match=r"download from http://127\.0\.0\.1.*failed"):
        fetch_with_checksum("lexicon", manifest)
    assert not (tmp_path / "cache" / "downloads" / "lexicon" / "lexicon.csv").exists()


def test_cut_download_of_a_pinned_file_fails_its_checksum(server, tmp_path):
    manifest, _ = pinned(server, tmp_path, url="/cut/lexicon.csv")
    with pytest.raises(DataChecksumError, match="checksum mismatch"):
        fetch_with_checksum("lexicon", manifest)


def test_cut_download_of_an_unpinned_zip_fails_clearly(server, tmp_path):
    manifest = unpinned_zip(server, tmp_path, rows=N_ROWS, url="/cut/social-chem-101.zip")
    path, sha = fetch_with_checksum("social-chem-101", manifest)  # nothing pins its bytes
    with pytest.raises(DataChecksumError, match="not a complete zip archive"):
        read_social_chem_file(path, manifest["social-chem-101"], sha)
