"""HTTP servers on 127.0.0.1 in a background thread, for tests and offline runs.

The scripted judge endpoint (:mod:`moralkit.evaluation.scripted_judge`) and the rehearsal's file
server (:mod:`moralkit.rehearsal.files`) run in one of these: a free port, daemon threads, shut
down and closed when the block ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextmanager
def local_server(handler: type[BaseHTTPRequestHandler], name: str) -> Iterator[ThreadingHTTPServer]:
    """Serve ``handler`` on a free port of 127.0.0.1 inside the block (thread ``name``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
