"""SAE training throughput vs the FLOP ceiling measured on the same matmul shapes.

(paper §4.2; book: Methods › SAE surgery, methods/sae.md.)

Usage::

    python benchmarks/sae_training.py [--d-in 576] [--d-sae 2304] [--batch 256] [--n 8192]

Prints the activations per second of :func:`moralkit.sae.train.train_sae` (the quick preset's
shapes by default: SmolLM2-135M's width 576, 4x expansion, batch 256) and its fraction of the
FLOP-bound ceiling. The ceiling is measured in the same run on the same five matmuls one training
step needs per batch: encoder and decoder forward (x·W_e, z·W_d) and backward (the decoder's
weight gradient zᵀ·g, the codes' gradient g·W_dᵀ, the encoder's weight gradient xᵀ·g_z), i.e.
10·d_in·d_sae FLOPs per activation (the input gradient is not needed). The often-quoted
"6·d·d_sae" counts multiply-adds of the three backward-free-of-input matmuls differently; the
fraction does not depend on the convention because both sides time the same work. Element-wise
work (ReLU, loss, AdamW, decoder renormalisation, clipping) is not in the ceiling, so it is an
upper bound. No speed assertions.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from moralkit.sae.config import preset
from moralkit.sae.train import train_sae


def matmul_ceiling(d_in: int, d_sae: int, batch: int, repeats: int = 20) -> float:
    """Activations per second if a training step cost only its five matmuls."""
    x, g = torch.randn(batch, d_in), torch.randn(batch, d_in)
    w_enc, w_dec = torch.randn(d_in, d_sae), torch.randn(d_sae, d_in)
    z, gz = torch.randn(batch, d_sae), torch.randn(batch, d_sae)

    def step() -> None:
        x @ w_enc
        z @ w_dec
        z.T @ g
        g @ w_dec.T
        x.T @ gz

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return batch * repeats / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--d-in", type=int, default=576)
    parser.add_argument("--d-sae", type=int, default=2304)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--n", type=int, default=8192, help="training activations per epoch")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.n + 256, args.d_in)).astype(np.float32)
    config = preset("quick", width=args.d_sae, batch_size=args.batch, epochs=args.epochs)
    ceiling_before = matmul_ceiling(args.d_in, args.d_sae, args.batch)
    result = train_sae(x[: args.n], x[args.n :], config, progress=False)
    ceiling_after = matmul_ceiling(args.d_in, args.d_sae, args.batch)
    ceiling = max(ceiling_before, ceiling_after)
    rate = result.samples_seen / result.train_seconds
    flops = 10 * args.d_in * args.d_sae
    print(
        f"shapes: d_in={args.d_in} d_sae={args.d_sae} batch={args.batch} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"matmul ceiling : {ceiling:10.0f} activations/s ({ceiling * flops / 1e9:.1f} GFLOP/s)")
    print(
        f"train_sae      : {rate:10.0f} activations/s ({rate * flops / 1e9:.1f} GFLOP/s; "
        "includes one validation pass per epoch)"
    )
    print(f"fraction of ceiling: {rate / ceiling:.0%}")


if __name__ == "__main__":
    main()
