"""CPU thread settings that always revert.

On small shared CPUs one torch thread is often faster than several (OpenMP spin-waiting), so
extraction and the probe set it per call and put it back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads (``None``: leave the setting alone)."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Run the block with at most ``n`` BLAS/OpenMP threads (``None`` or 0: no limit)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n or None):
        yield
