"""CPU thread settings that always revert.

On small shared CPUs one torch thread is often faster than several (OpenMP spin-waiting), so
extraction and the probe set it per call and put it back afterwards;
:func:`choose_num_threads` times both settings on a model's own MLP block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from moralkit.models.decoder import DecoderParts


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


_THREAD_CHOICES: dict[tuple, int] = {}


def choose_num_threads(parts: DecoderParts, width: int, tokens: int) -> int:
    """1 or torch's thread count, whichever runs this model's first MLP block faster (CPU).

    On small shared machines more threads can be slower: when other processes hold a core, or
    when the "cores" are hyper-threads of one physical core, OpenMP threads wait on each other
    at every small operation (measured here: an elementwise op 25x slower with 2 threads than
    with 1 under load). The timing takes well under a second and is remembered per process.
    """
    from moralkit.models.decoder import input_device

    default = torch.get_num_threads()
    block = parts.layers[0]
    mlp = getattr(block, "mlp", None)
    if default <= 1 or input_device(parts).type != "cpu" or mlp is None:
        return default
    dtype = next(parts.text_model.parameters()).dtype
    key = (type(block).__name__, width, tokens, dtype, default)
    if key not in _THREAD_CHOICES:
        sample = torch.randn(1, min(tokens, 1024), width, dtype=dtype)

        def calls_per_second(threads: int) -> float:
            torch.set_num_threads(threads)
            mlp(sample)  # warm-up
            calls, started = 0, time.perf_counter()
            while calls < 2 or time.perf_counter() - started < 0.15:
                mlp(sample)
                calls += 1
            return calls / (time.perf_counter() - started)

        rates: dict[int, float] = {}
        try:
            with torch.inference_mode():
                for threads in (default, 1, default, 1):  # interleaved, best of two each
                    rates[threads] = max(rates.get(threads, 0.0), calls_per_second(threads))
        except Exception:  # noqa: BLE001 - an MLP with another signature: keep the default
            rates = {default: 1.0}
        finally:
            torch.set_num_threads(default)
        _THREAD_CHOICES[key] = max(rates, key=rates.get)
    return _THREAD_CHOICES[key]
