"""The download path of :func:`moralkit.data.fetch`, tested offline against 127.0.0.1.

A local HTTP server serves the files; a manifest names them by URL; no mirror is set, so every
file goes through pooch into ``$MORALKIT_CACHE/downloads``. Checked: checksum verification,
the row count of an unpinned zip (like the official Social-Chem-101 release) and clear errors
on truncated downloads.
"""

from __future__ import annotations

import hashlib
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from moralkit.data.fetch import DataChecksumError, DataFileNotFoundError, fetch_with_checksum
from moralkit.data.manifest import load_manifest
from moralkit.data.social_chem import SOCIAL_CHEM_COLUMNS, read_social_chem_file

N_ROWS = 7
TSV_MEMBER = "social-chem-101.v1.0.tsv"


class Files(BaseHTTPRequestHandler):
    """Serves ``server.files``; ``/short/<name>`` lies about its length and stops halfway,
    ``/cut/<name>`` sends half the bytes with no length and closes (both: truncated)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        kind, _, name = self.path.lstrip("/").partition("/")
        data = self.server.files.get(name if kind in ("short", "cut") else self.path.lstrip("/"))
        self.server.requests.append(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if kind == "cut":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if kind == "short" else data)
        if kind == "short":
            self.close_connection = True

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    httpd.files, httpd.requests = {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_mirror(tmp_path, monkeypatch):
    monkeypatch.delenv("MORALKIT_DATA_MIRROR", raising=False)
    monkeypatch.setenv("MORALKIT_CACHE", str(tmp_path / "cache"))


def social_chem_zip(n_rows: int) -> bytes:
    """A small zip shaped like the official release: one TSV member with the 25 columns."""
    row = {c: "" for c in SOCIAL_CHEM_COLUMNS}
    row.update({"m": "1", "rot-bad": "0", "rot-moral-foundations": "care-harm",
                "action-moral-judgment": "1", "action-agree": "3"})  # fmt: skip
    lines = ["\t".join(SOCIAL_CHEM_COLUMNS)]
    for i in range(n_rows):
        row["action"] = f"helping neighbour {i}"
        lines.append("\t".join(row[c] for c in SOCIAL_CHEM_COLUMNS))
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(f"social-chem-101/{TSV_MEMBER}", "\n".join(lines) + "\n")
    return buffer.getvalue()


def write_manifest(tmp_path: Path, server, entries: dict[str, dict]) -> Path:
    base = f"http://127.0.0.1:{server.server_address[1]}"
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
    server.files["social-chem-101.zip"] = social_chem_zip(N_ROWS)
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
    assert len(table) == N_ROWS and table["action"].iloc[-1] == f"helping neighbour {N_ROWS - 1}"


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
