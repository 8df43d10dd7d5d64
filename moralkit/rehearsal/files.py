"""A small file server on 127.0.0.1: each path answers with its bytes (404 otherwise).

The rehearsal serves the synthetic Social-Chem-101 zip at the official URL's path with it; the
download tests serve their files (and misbehave on purpose) through a subclass of the handler.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from moralkit.local_http import local_server


class FileHandler(BaseHTTPRequestHandler):
    """``GET <path>`` answers ``server.files[<path without the leading />]``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.server.requests.append(self.path)
        data = self.server.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep test and job output quiet
        pass


@contextmanager
def serve_files(
    files: dict[str, bytes] | None = None, handler: type[BaseHTTPRequestHandler] = FileHandler
) -> Iterator[ThreadingHTTPServer]:
    """Serve ``files`` (path -> bytes; the server's ``files`` may grow) on a free port of
    127.0.0.1 inside the block; ``server.base_url`` is ``http://127.0.0.1:<port>``."""
    with local_server(handler, "moralkit-files") as server:
        server.files, server.requests = dict(files or {}), []
        server.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        yield server
