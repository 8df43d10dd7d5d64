"""Batched greedy generation for harmfulness checks and for the offline harmful completions.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) Greedy decoding, as
Wei et al.'s deterministic setting (temperature 0), so that a pruned and an unpruned model are
compared on the same decoding. Not cached here: the caller's weights may be pruned in memory,
which a weights hash would not see (:mod:`moralkit.data.harmful` caches the unpruned base
model's completions itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from moralkit.models.decoder import find_decoder
from moralkit.pruning.calibration import format_request
from moralkit.threads import choose_num_threads, torch_threads

if TYPE_CHECKING:
    from moralkit.models import LoadedModel


def cpu_threads(loaded: LoadedModel, setting: int | str | None) -> int | None:
    """Torch threads for ``loaded``: an int, None (leave alone) or "auto" (1 or all, timed)."""
    if setting == "auto":
        return choose_num_threads(find_decoder(loaded.model), loaded.hidden_size, 128)
    return setting


def generate_greedy(
    loaded: LoadedModel,
    requests: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    prefix: str = "",
    progress: bool = False,
    num_threads: int | str | None = None,
) -> list[str]:
    """Greedy continuations of each request shown in the model's format (+ ``prefix``).

    Batches are left-padded; only the new tokens are decoded (special tokens dropped).
    ``num_threads`` as in :func:`cpu_threads` (None: torch's current setting).
    """
    tok = loaded.tokenizer
    texts = [format_request(tok, r) + prefix for r in requests]
    out: list[str] = []
    side = tok.padding_side
    tok.padding_side = "left"
    try:
        with torch_threads(cpu_threads(loaded, num_threads)):
            starts = range(0, len(texts), batch_size)
            for start in tqdm(starts, desc=f"{loaded.name}: generating", disable=not progress):
                out.extend(
                    _generate_batch(loaded, texts[start : start + batch_size], max_new_tokens)
                )
    finally:
        tok.padding_side = side
    return [text.strip() for text in out]


def _generate_batch(loaded: LoadedModel, chunk: list[str], max_new_tokens: int) -> list[str]:
    tok = loaded.tokenizer
    chat = bool(getattr(tok, "chat_template", None))  # the template holds special tokens
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=not chat)
    enc = {k: v.to(loaded.model.device) for k, v in enc.items()}
    with torch.inference_mode():
        ids = loaded.model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id
        )
    return tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
