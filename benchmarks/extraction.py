"""Extraction throughput: moralkit vs the paper's loops vs the FLOP ceiling.

(paper §2.1; book: Methods › Activations, methods/activations.md.)

Usage::

    python benchmarks/extraction.py [--model smollm2-135m] [--n 400] [--n-padded 48]

Prints real (non-padding) tokens per second of

  (a) ``moralkit.activations.extract_activations`` (all layers, mean + last pooling);
  (b) the paper's diagnosis loop, re-implemented: left padding, batch 8, padding to the longest
      in the batch, a full forward with logits (and the default KV cache), hooks on all layers;
  (c) the surgery script's loop: the same but every prompt padded to 128 tokens (run on the first
      ``--n-padded`` prompts: its cost per prompt is constant, so the rate is representative);

and the FLOP-bound ceiling: sustained matmul GFLOP/s measured on the model's own linear-layer
shapes (M = a typical batch of tokens) divided by the FLOPs a token needs, i.e.
2 × (decoder-block parameters) + attention scores/values 4 × n_layers × (heads × head_dim) × mean
context length. Embedding lookup, LM head (not needed for hidden states), norms and activations
are not counted, so the ceiling is an upper bound. All runs use the same dtype (fp32 default) and
one thread count (moralkit's automatic choice, or ``--threads``). No speed assertions.
"""

from __future__ import annotations

import argparse
import os
import random
import time

import torch

from moralkit.activations import DEFAULT_BATCH_TOKENS, DEFAULT_TEMPLATE, extract_activations
from moralkit.models import find_decoder, load_model

SAMPLE_ACTIONS = [
    "helping a friend move house",
    "lying to a friend",
    "stealing bread",
    "keeping a promise",
    "betraying your team",
    "respecting your elders",
    "cheating on a test",
    "sharing food with a stranger",
    "desecrating a grave",
    "obeying the law",
    "mocking a disabled person",
    "donating blood",
    "abandon",
    "loyal",
    "filthy",
    "kindness",
]


def load_texts(n: int, seed: int = 0) -> tuple[list[str], str]:
    """``n`` short action texts: MoralStrength records when available, else built-in samples."""
    try:
        from moralkit.data import diagnostic_records

        texts = list(dict.fromkeys(diagnostic_records("moralstrength").texts))
        source = "moralstrength diagnostic records"
    except Exception as err:  # noqa: BLE001 - data not available offline: fall back
        texts = SAMPLE_ACTIONS * (n // len(SAMPLE_ACTIONS) + 1)
        source = f"built-in sample sentences ({type(err).__name__} loading moralstrength)"
    random.Random(seed).shuffle(texts)
    return texts[:n], source


def paper_loop(loaded, texts: list[str], pad_to: int | None, batch_size: int = 8) -> float:
    """The official diagnosis (pad_to=None) or surgery (pad_to=128) loop; returns real tok/s."""
    tokenizer, model = loaded.tokenizer, loaded.model
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    layers = find_decoder(model).layers
    store: dict[int, torch.Tensor] = {}
    handles = [
        layer.register_forward_hook(lambda m, a, o, i=i: store.__setitem__(i, o))
        for i, layer in enumerate(layers)
    ]
    prompts = [DEFAULT_TEMPLATE.replace("{action}", t) for t in texts]
    real = 0
    started = time.perf_counter()
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                batch = tokenizer(
                    prompts[start : start + batch_size],
                    return_tensors="pt",
                    padding="max_length" if pad_to else True,
                    truncation=True,
                    max_length=pad_to or 128,
                )
                model(**batch)  # full forward: logits and the default cache, as in the paper
                mask = batch["attention_mask"]
                real += int(mask.sum())
                last = mask.sum(1) - 1  # the official index (wrong under left padding)
                for i in range(len(layers)):
                    hidden = store[i][0] if isinstance(store[i], tuple) else store[i]
                    hidden = hidden.float()
                    (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
                    hidden[torch.arange(hidden.shape[0]), last].cpu()
    finally:
        for handle in handles:
            handle.remove()
    return real / (time.perf_counter() - started)


def matmul_gflops(loaded, tokens: int, repeats: int = 5) -> float:
    """Sustained GFLOP/s of the model's own linear layers (one decoder block) at M=tokens."""
    block = find_decoder(loaded.model).layers[0]
    weights = [m.weight for m in block.modules() if isinstance(m, torch.nn.Linear)]
    dtype = weights[0].dtype
    inputs = [torch.randn(tokens, w.shape[1], dtype=dtype) for w in weights]
    with torch.inference_mode():
        for x, w in zip(inputs, weights, strict=True):
            torch.nn.functional.linear(x, w)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            for x, w in zip(inputs, weights, strict=True):
                torch.nn.functional.linear(x, w)
        elapsed = time.perf_counter() - started
    flops = repeats * sum(2 * tokens * w.shape[0] * w.shape[1] for w in weights)
    return flops / elapsed / 1e9


def flops_per_token(loaded, mean_length: float) -> tuple[float, int]:
    """2 × decoder-block parameters + attention (scores and values) at the mean context."""
    layers = find_decoder(loaded.model).layers
    block_params = sum(p.numel() for p in layers.parameters())
    config = loaded.model.config.get_text_config()
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    context = (mean_length + 1) / 2  # causal: token t attends to t positions
    attention = 4 * len(layers) * config.num_attention_heads * head_dim * context
    return 2 * block_params + attention, block_params


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=400, help="prompts for (a) and (b)")
    parser.add_argument("--n-padded", type=int, default=48, help="prompts for (c)")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-tokens", type=int, default=DEFAULT_BATCH_TOKENS)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (all runs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(
        f"load average before: {load_average()} (cores: {os.cpu_count()}, "
        f"torch threads: {torch.get_num_threads()})"
    )
    loaded = load_model(args.model, dtype=args.dtype)
    texts, source = load_texts(args.n)
    lengths = [
        len(ids)
        for ids in loaded.tokenizer([DEFAULT_TEMPLATE.replace("{action}", t) for t in texts])[
            "input_ids"
        ]
    ]
    mean_length = sum(lengths) / len(lengths)
    print(
        f"model {loaded.name} ({loaded.n_layers} layers x {loaded.hidden_size}, {loaded.dtype}); "
        f"{len(texts)} prompts from {source}; mean {mean_length:.1f} tokens/prompt"
    )

    warm = extract_activations(loaded, texts[:16], progress=False)  # warm-up; picks threads
    threads = args.threads or warm.meta["torch_threads"]
    torch.set_num_threads(threads)  # every run and the ceiling use the same thread count
    print(f"threads for all runs: {threads} (moralkit's choice unless --threads)")
    flops, block_params = flops_per_token(loaded, mean_length)
    # The ceiling is measured right before and after (a): on a shared machine the sustained
    # matmul rate drifts, and (a) should be compared with the rate of its own moment.
    gflops_before = matmul_gflops(loaded, tokens=args.batch_tokens)
    acts = extract_activations(
        loaded, texts, batch_tokens=args.batch_tokens, num_threads=threads, progress=False
    )
    gflops_after = matmul_gflops(loaded, tokens=args.batch_tokens)
    rate_a = acts.meta["tokens_per_s"]
    print(
        f"(a) moralkit extract_activations  : {rate_a:8.1f} tok/s  "
        f"({acts.meta['n_tokens']} tokens, {acts.meta['n_batches']} batches, "
        f"{acts.meta['positions_run']} positions run, {acts.meta['layout']}, "
        f"{acts.meta['wall_s']:.1f} s)"
    )
    rate_b = paper_loop(loaded, texts, pad_to=None)
    print(f"(b) paper diagnosis loop (batch 8) : {rate_b:8.1f} tok/s")
    rate_c = paper_loop(loaded, texts[: args.n_padded], pad_to=128)
    print(
        f"(c) surgery loop (pad to 128)      : {rate_c:8.1f} tok/s  "
        f"(first {min(args.n_padded, len(texts))} prompts)"
    )
    gflops = (gflops_before + gflops_after) / 2
    ceiling = gflops * 1e9 / flops
    print(
        f"ceiling: {gflops:.1f} GFLOP/s (before {gflops_before:.1f}, after {gflops_after:.1f}) "
        f"sustained on the model's layer shapes at M={args.batch_tokens}"
    )
    print(
        f"         / {flops / 1e6:.1f} MFLOP per token (2 x {block_params / 1e6:.1f}M block "
        f"params + attention) = {ceiling:.1f} tok/s"
    )
    print(
        f"(a) = {rate_a / ceiling:.0%} of ceiling; speed-up {rate_a / rate_b:.2f}x vs (b), "
        f"{rate_a / rate_c:.1f}x vs (c)"
    )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
