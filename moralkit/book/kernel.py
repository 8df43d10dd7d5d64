"""The kernel a chapter runs in: started and stopped by moralkit, its stderr relayed.

papermill would start and stop the kernel itself; moralkit starts it so that it can be stopped
on Ctrl-C before it writes anything: the kernel runs in its own session (the terminal's Ctrl-C
does not reach it), and a kernel whose client disappears prints tracebacks about closed
sockets. Here its stderr (library warnings, a crash message) is relayed line by line to the
command's stderr until the run is interrupted, and an interrupted run kills the kernel's process
group at once, so the user reads one line (:class:`moralkit.book.execution.RunInterrupted`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

#: what every kernel start prints (ipykernel >= 7 on a local TCP connection): not news to a user
_NOISE = b"Kernel is running over TCP without encryption"


class _Relay(threading.Thread):
    """Copy the kernel's stderr to ours, line by line, until told to be quiet."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.quiet = False

    def run(self) -> None:
        for line in iter(self.stream.readline, b""):
            if not self.quiet and _NOISE not in line:
                sys.stderr.write(line.decode("utf-8", errors="replace"))
                sys.stderr.flush()


@contextmanager
def chapter_kernel(kernel_name: str, cwd: Path) -> Iterator[AsyncKernelManager]:
    """A started kernel in ``cwd`` (environment: this process's, as it is now), for papermill's
    ``km=``; shut down on leaving, killed at once on Ctrl-C (KeyboardInterrupt re-raised)."""
    km = AsyncKernelManager(kernel_name=kernel_name)
    run_sync(km.start_kernel)(cwd=str(cwd), stderr=subprocess.PIPE)
    pid = km.provisioner.pid if km.provisioner is not None else None
    process = getattr(km.provisioner, "process", None)
    relay = _Relay(process.stderr) if process is not None and process.stderr else None
    if relay is not None:
        relay.start()
    try:
        yield km
    except KeyboardInterrupt:
        if relay is not None:
            relay.quiet = True
        _kill_group(pid)
        raise
    finally:
        try:
            if run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=False)
        except (RuntimeError, KeyboardInterrupt):  # already gone, or a second Ctrl-C
            _kill_group(pid)
        if relay is not None:
            relay.join(timeout=5)


def _kill_group(pid: int | None) -> None:
    """SIGKILL the kernel's process group (it leads its own session), if it is still there."""
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
