"""Fixtures shared across test modules."""

import pytest

from moralkit.threads import torch_threads


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread avoids OpenMP spin-waiting when the CPU is shared (10x faster)."""
    with torch_threads(1):
        yield
