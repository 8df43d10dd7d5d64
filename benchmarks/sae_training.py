"""SAE training throughput vs the FLOP ceiling measured on the same matmul shapes.

(paper §4.2; book: Methods › SAE surgery, methods/sae.md.)

Usage::

    python benchmarks/sae_training.py [--d-in 576] [--widths 576,2304,9216]
                                      [--batches 256,4096] [--n 16384] [--epochs 4]
                                      [--seconds 5] [--runs 5]

Prints the activations per second of :func:`moralkit.sae.train.train_sae` (the quick preset's
schedule and departures, at SmolLM2-135M's input width 576) and its fraction of the FLOP-bound
ceiling, per batch size and SAE width, as the **median of ``--runs`` runs**, each long enough to
be stable (at least 16 batches per epoch, and enough epochs for ``--seconds`` of matmuls at the
ceiling: ~1,900 steps at 1x and batch 256, ~500 at 4x), with every run's numbers and the
machine's load average beside it: on a shared machine the fraction is only as good as the quiet
it was measured in (this machine's speed drifts within minutes, hence five runs by default and a
ceiling measured through each run). The default batches are the quick preset's (256) and the
paper's (4,096); the default widths are chapter 07's quick SAE (1x: 576 latents), 4x (2,304) and
the paper's 16x expansion (9,216). A step's cost beyond its matmuls is of two kinds: per step
(AdamW, clipping and decoder renormalisation pass over the weights whatever the batch) and per
activation (ReLU, loss and their gradients pass over the batch x width codes,
:func:`moralkit.sae.loss.fused_paper_gradients` keeping those passes few). Small batches pay the
first, large ones the second; at 1x and batch 256 a step's five matmuls take ~2.5 ms and each of
its other kernels a fixed ~0.03-0.3 ms, so the fraction there measures per-kernel overhead more
than the loop.

The ceiling is the mean of measurements before each run, between its epochs (through
``train_sae``'s ``on_epoch``, whose time is not counted as training) and after it, each on the
same five matmuls one training step needs per batch. Measured only before and after, a run's
ceiling missed the machine's drift within the run: on 2026-12-06, within one benchmark, the same
code gave runs from 57% to 98%. The five matmuls: encoder and decoder forward (x·W_e, z·W_d) and
backward (the decoder's weight gradient zᵀ·g, the codes' gradient g·W_dᵀ, the encoder's weight
gradient xᵀ·g_z), i.e. 10·d_in·d_sae FLOPs per activation (the input gradient is not needed).
The often-quoted "6·d·d_sae" counts multiply-adds of the three backward-free-of-input matmuls
differently; the fraction does not depend on the convention because both sides time the same
work. Element-wise work (ReLU, loss, AdamW, decoder renormalisation, clipping, λ updates,
resampling) is not in the ceiling, so it is an upper bound. Each run is reported twice: counting
only the training steps' FLOPs (the validation pass once per epoch then counts as lost time) and
counting every matmul the loop runs, validation's encoder and decoder forward passes included
(the usual "model FLOPs utilisation" convention). No speed assertions.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import time

import numpy as np
import torch

from moralkit.sae.config import preset
from moralkit.sae.train import train_sae

VALIDATION = 1024  # held-out activations: one validation pass per epoch, as training does


@functools.lru_cache(maxsize=1)
def _operands(d_in: int, d_sae: int, batch: int) -> tuple[torch.Tensor, ...]:
    """Random operands of a step's five matmuls, made once per shape (at 16x and batch 4,096
    they are 360 MB: drawing them takes longer than a measurement between epochs)."""
    shapes = [(batch, d_in)] * 2 + [(d_in, d_sae), (d_sae, d_in)] + [(batch, d_sae)] * 2
    return tuple(torch.randn(shape) for shape in shapes)


def matmul_ceiling(d_in: int, d_sae: int, batch: int, seconds: float = 2.0) -> float:
    """Activations per second if a training step cost only its five matmuls (timed for about
    ``seconds``)."""
    x, g, w_enc, w_dec, z, gz = _operands(d_in, d_sae, batch)

    def step() -> None:
        x @ w_enc
        z @ w_dec
        z.T @ g
        g @ w_dec.T
        x.T @ gz

    for _ in range(2):
        step()
    repeats, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        repeats += 1
    return batch * repeats / (time.perf_counter() - t0)


def one_run(x: np.ndarray, d_sae: int, batch: int, args: argparse.Namespace) -> dict[str, float]:
    """One timed training run, the ceiling measured before it, between its epochs and after
    it. Enough epochs that its matmuls alone would take ``args.seconds`` at the ceiling (a
    run's one-off costs, such as centring, the validation set's top direction and the first
    step's allocations, then weigh as they do in a chapter's run of a thousand steps and
    more)."""
    n = len(x) - VALIDATION
    ceilings = [matmul_ceiling(args.d_in, d_sae, batch)]
    epochs = max(args.epochs, math.ceil(args.seconds * ceilings[0] / n))
    config = preset("quick", width=d_sae, batch_size=batch, epochs=epochs, warmup_epochs=1)

    def between_epochs(_row: dict) -> None:  # not counted in train_seconds
        ceilings.append(matmul_ceiling(args.d_in, d_sae, batch, seconds=0.25))

    result = train_sae(x[:n], x[n:], config, progress=False, on_epoch=between_epochs)
    ceilings.append(matmul_ceiling(args.d_in, d_sae, batch))
    ceiling = statistics.mean(ceilings)
    rate = result.samples_seen / result.train_seconds
    # validation: encoder and decoder forward (4 of a training activation's 10 FLOP units)
    # on every validation row, once per epoch and once at the end
    passes = len(result.history) + 1
    work = result.samples_seen + passes * (len(x) - n) * 4 / 10
    steps = int(result.history["step"].iloc[-1])
    return {"rate": rate, "ceiling": ceiling, "fraction": rate / ceiling,
            "fraction_all": work / result.train_seconds / ceiling, "steps": steps,
            "low": min(ceilings), "high": max(ceilings),
            "seconds": result.train_seconds, "load": os.getloadavg()[0]}  # fmt: skip


def measure_width(
    x: np.ndarray, d_sae: int, batch: int, args: argparse.Namespace
) -> tuple[float, float]:
    """Print every run at one SAE width and batch; return the median fractions of the
    ceiling, counting training FLOPs only and counting validation's matmuls too."""
    flops = 10 * args.d_in * d_sae
    print(f"batch {batch}, width {d_sae} ({d_sae / args.d_in:g}x): {args.runs} runs, each "
          f"≥ {args.epochs} epochs and ≥ {args.seconds:g} s of matmuls at the ceiling")  # fmt: skip
    runs = []
    for k in range(args.runs):
        r = one_run(x, d_sae, batch, args)
        runs.append(r)
        print(
            f"  run {k + 1}: {r['steps']} steps, {r['rate']:8.0f} activations/s in "
            f"{r['seconds']:.1f} s, ceiling {r['ceiling']:8.0f} ({r['ceiling'] * flops / 1e9:.1f} "
            f"GFLOP/s; {r['low'] * flops / 1e9:.0f}-{r['high'] * flops / 1e9:.0f} during the run): "
            f"{r['fraction']:.0%}, {r['fraction_all']:.0%} with validation's FLOPs "
            f"(load average {r['load']:.2f})"
        )
    median = statistics.median(r["fraction"] for r in runs)
    median_all = statistics.median(r["fraction_all"] for r in runs)
    rate = statistics.median(r["rate"] for r in runs)
    print(
        f"  median fraction of ceiling: {median:.0%} counting training FLOPs only "
        f"({rate:.0f} activations/s, {rate * flops / 1e9:.1f} GFLOP/s), {median_all:.0%} "
        "counting the validation passes' matmuls too"
    )
    return median, median_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d-in", type=int, default=576)
    parser.add_argument("--widths", default="576,2304,9216", help="SAE widths, comma-separated")
    parser.add_argument("--batches", default="256,4096", help="batch sizes, comma-separated")
    parser.add_argument(
        "--n", type=int, default=16384,
        help="training activations per epoch (at least 16 batches: raised for large batches)",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=4, help="at least this many per run")
    parser.add_argument(
        "--seconds", type=float, default=5.0,
        help="more epochs where needed: a run's matmuls would take this long at the ceiling",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"d_in={args.d_in} threads={torch.get_num_threads()} cpus={os.cpu_count()}")
    rng = np.random.default_rng(0)
    widths = [int(v) for v in args.widths.split(",")]
    medians = {}
    for batch in (int(v) for v in args.batches.split(",")):
        n = max(args.n, 16 * batch)
        x = rng.normal(size=(n + VALIDATION, args.d_in)).astype(np.float32)
        medians |= {(batch, w): measure_width(x, w, batch, args) for w in widths}
    print("median fraction of the FLOP ceiling:")
    for (batch, w), (m, m_all) in medians.items():
        print(
            f"  batch {batch:5d}, {w:5d} latents ({w / args.d_in:g}x): {m:.0%} "
            f"(training FLOPs), {m_all:.0%} (all matmul FLOPs)"
        )
    print(f"1-min load average now {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
