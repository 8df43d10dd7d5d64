"""Log-likelihood scoring with the LM head applied only where a measure needs it.

(book: Methods › Evaluation, methods/evaluation.md.) The LM head dominates the cost of scoring
for large vocabularies (Gemma 3: 262k tokens), so the decoder stack runs once per batch and the
head is applied to the scored positions only: the continuation tokens for conditional
log-likelihoods, two vocabulary rows at the last position for a yes/no answer margin. Any
steering hook on a decoder layer (:mod:`moralkit.steering`) acts on these passes as it does on
``generate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from moralkit.models.decoder import find_decoder

if TYPE_CHECKING:
    from moralkit.models import LoadedModel


def _final_hidden(loaded: LoadedModel, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Final (normed) hidden states of right-padded ``ids`` and the attention mask."""
    width = max(len(x) for x in ids)
    pad = loaded.tokenizer.pad_token_id or 0
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    text_model = find_decoder(loaded.model).text_model
    with torch.inference_mode():
        out = text_model(
            input_ids=input_ids.to(loaded.device), attention_mask=mask.to(loaded.device)
        )
    return out.last_hidden_state, mask


def _logits(loaded: LoadedModel, hidden: torch.Tensor, rows: torch.Tensor | None = None):
    """LM-head logits of ``hidden`` (all vocabulary, or the vocabulary ``rows``), soft-capped
    like the model when its config asks for it (Gemma)."""
    head = loaded.model.get_output_embeddings()
    weight = head.weight if rows is None else head.weight[rows]
    logits = hidden.to(weight.dtype) @ weight.T
    if getattr(head, "bias", None) is not None:
        logits = logits + (head.bias if rows is None else head.bias[rows])
    cap = getattr(loaded.model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


#: positions per LM-head product: bounds the (positions x vocabulary) logits in memory
#: (512 x 262k float32 = 0.5 GB for Gemma)
_HEAD_CHUNK = 512


def _picked_logprobs(loaded: LoadedModel, hidden: torch.Tensor, targets: torch.Tensor):
    """log P(target) at each position of ``hidden`` (positions x hidden size)."""
    logp = torch.log_softmax(_logits(loaded, hidden), dim=-1)
    return logp.gather(1, targets[:, None])[:, 0]


def encode(loaded: LoadedModel, text: str, special: bool) -> list[int]:
    """Token ids of ``text`` (with the tokenizer's BOS when ``special``)."""
    return list(loaded.tokenizer(text, add_special_tokens=special)["input_ids"])


def start_ids(loaded: LoadedModel) -> list[int]:
    """A start token for an empty context (BOS, else the end-of-text token GPT-style models
    use as a document separator), so a text's first token is scored too."""
    tok = loaded.tokenizer
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    if start is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to start a text with")
    return [int(start)]


def continuation_logprobs(
    loaded: LoadedModel,
    contexts: Sequence[str],
    continuations: Sequence[str],
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of log P(continuation tokens | context) and the number of those tokens, per pair.

    Context and continuation are tokenised separately (the context with the tokenizer's BOS),
    so the continuation's tokens are exactly its own.
    """
    seqs, spans = [], []
    for context, continuation in zip(contexts, continuations, strict=True):
        head = encode(loaded, context, special=True) or start_ids(loaded)
        tail = encode(loaded, continuation, special=False)
        if not tail:
            raise ValueError(f"empty continuation after tokenisation: {continuation!r}")
        seqs.append(head + tail)
        spans.append((len(head), len(head) + len(tail)))
    totals, counts = np.zeros(len(seqs)), np.zeros(len(seqs), dtype=int)
    order = np.argsort([len(s) for s in seqs])  # length-sorted batches pad little
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        hidden, _ = _final_hidden(loaded, [seqs[i] for i in batch])
        # one LM-head product per batch: the head (262k x 640 for Gemma) is read once, not
        # once per row
        rows = [hidden[row, spans[i][0] - 1 : spans[i][1] - 1] for row, i in enumerate(batch)]
        targets = [seqs[i][spans[i][0] : spans[i][1]] for i in batch]
        with torch.inference_mode():
            stacked = torch.cat(rows)
            flat = torch.tensor([t for tgt in targets for t in tgt], device=stacked.device)
            picked = torch.cat(
                [
                    _picked_logprobs(
                        loaded, stacked[i : i + _HEAD_CHUNK], flat[i : i + _HEAD_CHUNK]
                    )
                    for i in range(0, len(flat), _HEAD_CHUNK)
                ]
            )
        for index, part in zip(batch, picked.split([len(t) for t in targets]), strict=True):
            totals[index] = float(part.sum())
            counts[index] = len(part)
    return totals, counts


def answer_margins(
    loaded: LoadedModel,
    prompts: Sequence[str],
    positive: str,
    negative: str,
    batch_size: int = 16,
) -> np.ndarray:
    """log P(positive) − log P(negative) for the first answer token after each prompt.

    The two answers must start with different tokens; only their first tokens are compared,
    so the softmax normaliser cancels and two rows of the LM head suffice.
    """
    pos, neg = encode(loaded, positive, False), encode(loaded, negative, False)
    if not pos or not neg or pos[0] == neg[0]:
        raise ValueError(f"answers {positive!r} and {negative!r} must start with different tokens")
    rows = torch.tensor([pos[0], neg[0]], device=loaded.model.device)
    seqs = [encode(loaded, p, special=True) for p in prompts]
    margins = np.zeros(len(seqs))
    order = np.argsort([len(s) for s in seqs])
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        hidden, mask = _final_hidden(loaded, [seqs[i] for i in batch])
        last = mask.sum(dim=1) - 1
        with torch.inference_mode():
            logits = _logits(loaded, hidden[torch.arange(len(batch)), last.to(hidden.device)], rows)
        margins[batch] = (logits[:, 0] - logits[:, 1]).cpu().numpy()
    return margins


def token_nll(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 8) -> np.ndarray:
    """Per text: [summed negative log-likelihood, number of predicted tokens] (for perplexity)."""
    out = np.zeros((len(texts), 2))
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        totals, counts = continuation_logprobs(
            loaded, [""] * len(chunk), chunk, batch_size=batch_size
        )
        out[start : start + len(chunk), 0] = -totals
        out[start : start + len(chunk), 1] = counts
    return out
