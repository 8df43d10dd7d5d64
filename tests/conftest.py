"""Fixtures shared across test modules."""

import pytest
from shared_data import SHARED_DATA

from moralkit.threads import torch_threads


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one thread avoids OpenMP spin-waiting when the CPU is shared (10x faster)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def offline_mirror(tmp_path_factory):
    """For one test module: read data through ../shared/data, into a fresh moralkit cache."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MORALKIT_CACHE", str(tmp_path_factory.mktemp("mirror") / "cache"))
        mp.setenv("MORALKIT_DATA_MIRROR", str(SHARED_DATA))
        yield SHARED_DATA
