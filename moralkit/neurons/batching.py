"""Tokenise prompt batches and read the few logits chapter 09 needs.

Right padding keeps every real token at its unpadded position, so a batched forward gives the
same activations as one prompt at a time. Gemma-3 has a 262k-token vocabulary: only the logits
of the last real token are computed (:func:`last_token_logits`), never the full sequence's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from moralkit.models.decoder import find_decoder


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter."""
    return next(model.parameters()).device


@contextmanager
def padding_side(tokenizer, side: str) -> Iterator[None]:
    """Temporarily pad on ``side`` (and use EOS as pad when the tokenizer has none)."""
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    tokenizer.padding_side = side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    try:
        yield
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = old_pad


def encode_batches(
    tokenizer,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    device: torch.device | str = "cpu",
    side: str = "right",
    add_special_tokens: bool = True,
) -> Iterator[dict[str, torch.Tensor]]:
    """``{input_ids, attention_mask}`` batches of ``texts`` (truncated to ``max_length``).

    ``add_special_tokens=False`` for texts a chat template already wrapped (BOS included).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with padding_side(tokenizer, side):
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=max_length,
                add_special_tokens=add_special_tokens,
            )
            yield {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}


def has_chat_template(tokenizer, use_chat_template: bool = True) -> bool:
    """True when prompts should be wrapped in the tokenizer's chat template."""
    return bool(use_chat_template and getattr(tokenizer, "chat_template", None))


def chat_prompt(tokenizer, text: str, use_chat_template: bool) -> str:
    """``text`` as a user turn with the generation prompt, when the tokenizer has a template."""
    if has_chat_template(tokenizer, use_chat_template):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    return text


@torch.no_grad()
def last_token_logits(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Next-token logits (batch, vocab) after each row's last real token (right padding)."""
    text_model = find_decoder(model).text_model
    hidden = text_model(**batch).last_hidden_state  # normalised by the text model
    last = batch["attention_mask"].sum(1) - 1
    picked = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    return _logits(model, picked)


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens all rows share at the start, leaving each row at least one token of its own."""
    shortest = min(len(r) for r in rows)
    length = 0
    while length < shortest - 1 and len({r[length] for r in rows}) == 1:
        length += 1
    return length


@torch.no_grad()
def shared_prefix_last_logits(
    model: nn.Module, tokenizer, rows: Sequence[Sequence[int]], batch_size: int
) -> torch.Tensor:
    """Next-token logits after each token row, running the rows' common prefix only once.

    The prefix's key/value cache is computed once and copied for each batch of suffixes
    (right-padded), so the result equals a full forward of each row (up to float rounding);
    any gate hook active around the call sees the prefix once and every suffix.
    """
    text_model = find_decoder(model).text_model
    device = model_device(model)
    n_prefix = common_prefix_length(rows)
    cache = None
    if n_prefix:
        prefix = torch.tensor([list(rows[0][:n_prefix])], device=device)
        cache = text_model(input_ids=prefix, use_cache=True).past_key_values
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    out = []
    for start in range(0, len(rows), batch_size):
        suffixes = [list(r[n_prefix:]) for r in rows[start : start + batch_size]]
        width = max(len(x) for x in suffixes)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x in suffixes], device=device)
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in suffixes])
        mask = mask.to(device)
        kwargs = {}
        if cache is not None:
            batch_cache = copy.deepcopy(cache)  # the forward appends to the cache in place
            batch_cache.batch_repeat_interleave(len(suffixes))
            ones = torch.ones(len(suffixes), n_prefix, dtype=mask.dtype, device=device)
            kwargs = {"past_key_values": batch_cache, "use_cache": True}
            full_mask = torch.cat([ones, mask], dim=1)
        else:
            full_mask = mask
        hidden = text_model(input_ids=ids, attention_mask=full_mask, **kwargs).last_hidden_state
        last = mask.sum(1) - 1
        out.append(hidden[torch.arange(len(suffixes), device=device), last])
    return _logits(model, torch.cat(out))


def _logits(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


@torch.no_grad()
def token_nll(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
    """Summed next-token negative log-likelihood over the real tokens, and their count."""
    logits = model(**batch).logits.float()
    targets = batch["input_ids"][:, 1:]
    mask = batch["attention_mask"][:, 1:].bool()
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return float(-(picked[mask]).sum()), int(mask.sum())
