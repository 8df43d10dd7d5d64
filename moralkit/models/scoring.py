"""Scoring with a loaded model: LM-head logits, token log-probabilities, NLL and perplexity.

(book: Methods › Evaluation, methods/evaluation.md; used by chapters 08, 09 and 10.) The one
place where the LM head is applied (:func:`lm_head_logits`, soft-capped as the model does).

The LM head dominates the cost of scoring for large vocabularies (Gemma 3: 262k tokens), so the
decoder stack runs once per batch and the head is applied to the scored positions only: the
continuation tokens for conditional log-likelihoods, the last position for next-token logits,
two vocabulary rows for a yes/no answer margin; one LM-head product per batch. Two functions
also share a forward pass through the key/value cache: :func:`shared_context_logprobs` runs
contexts once for several continuations (batched by length, :func:`length_groups`),
:func:`next_token_logits` runs the prompts' common prefix once. Any hook on a decoder layer
(steering, neuron edits, pruning) acts on these passes as it does on ``generate``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from moralkit.models.decoder import find_decoder, input_device

if TYPE_CHECKING:
    from moralkit.models import LoadedModel

#: positions per LM-head product: bounds the (positions x vocabulary) logits in memory
#: (512 x 262k float32 = 0.5 GB for Gemma)
HEAD_CHUNK = 512


def lm_head_logits(
    loaded: LoadedModel, hidden: torch.Tensor, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Float32 LM-head logits of final (normed) hidden states, over the whole vocabulary or
    the vocabulary ``rows``, soft-capped in the model's dtype like the model's own forward
    when its config asks for it (``final_logit_softcapping``, Gemma 2). Differentiable."""
    head = loaded.model.get_output_embeddings()
    weight = head.weight if rows is None else head.weight[rows]
    logits = hidden.to(weight.dtype) @ weight.T
    if getattr(head, "bias", None) is not None:
        logits = logits + (head.bias if rows is None else head.bias[rows])
    cap = getattr(loaded.model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def token_logprobs(
    loaded: LoadedModel, states: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """log P(target) at each of ``states`` (positions x hidden size), the LM head applied in
    chunks of :data:`HEAD_CHUNK` positions."""
    parts = []
    for i in range(0, len(targets), HEAD_CHUNK):
        logp = torch.log_softmax(lm_head_logits(loaded, states[i : i + HEAD_CHUNK]), dim=-1)
        parts.append(logp.gather(1, targets[i : i + HEAD_CHUNK, None])[:, 0])
    return torch.cat(parts)


def pad_id(loaded: LoadedModel) -> int:
    """The id padding uses (masked, so any id would do): the pad token, else 0."""
    pad = loaded.tokenizer.pad_token_id
    return int(pad) if pad is not None else 0


def pad_rows(
    rows: Sequence[Sequence[int]], pad: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as one padded ``(ids, attention_mask)`` pair, padded on ``side``."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(width - len(row), width)
        ids[i, span] = torch.tensor(list(row), dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def decoder_forward(loaded: LoadedModel, ids: torch.Tensor, mask: torch.Tensor | None, **kwargs):
    """The decoder stack (no LM head) on ``ids`` (``mask`` None: no padding); its output has
    ``last_hidden_state``. Tensors in ``kwargs`` go to the decoder's device too."""
    parts = find_decoder(loaded.model)
    device = input_device(parts)
    if mask is not None:
        kwargs["attention_mask"] = mask.to(device)
    kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    return parts.text_model(input_ids=ids.to(device), **kwargs)


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


def _context_ids(loaded: LoadedModel, context: str) -> list[int]:
    return encode(loaded, context, special=True) or start_ids(loaded)


def _continuation_ids(loaded: LoadedModel, continuation: str) -> list[int]:
    tail = encode(loaded, continuation, special=False)
    if not tail:
        raise ValueError(f"empty continuation after tokenisation: {continuation!r}")
    return tail


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
        head, tail = _context_ids(loaded, context), _continuation_ids(loaded, continuation)
        seqs.append(head + tail)
        spans.append((len(head), len(head) + len(tail)))
    totals, counts = np.zeros(len(seqs)), np.zeros(len(seqs), dtype=int)
    order = np.argsort([len(s) for s in seqs])  # length-sorted batches pad little
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        with torch.inference_mode():
            hidden = decoder_forward(
                loaded, *pad_rows([seqs[i] for i in batch], pad_id(loaded))
            ).last_hidden_state
            states = torch.cat(
                [hidden[row, spans[i][0] - 1 : spans[i][1] - 1] for row, i in enumerate(batch)]
            )
            targets = [seqs[i][spans[i][0] : spans[i][1]] for i in batch]
            flat = torch.tensor([t for tgt in targets for t in tgt], device=states.device)
            picked = token_logprobs(loaded, states, flat)
        for index, part in zip(batch, picked.split([len(t) for t in targets]), strict=True):
            totals[index] = float(part.sum())
            counts[index] = len(part)
    return totals, counts


def shared_context_logprobs(
    loaded: LoadedModel, contexts: Sequence[str], continuations: Sequence[Sequence[str]]
) -> list[np.ndarray]:
    """Mean log P(token | context, earlier tokens) per token of each continuation, for several
    continuations of the same contexts (``continuations[k][i]`` continues ``contexts[i]``);
    :func:`shared_context_sums` divided by the token counts."""
    return [total / count for total, count in shared_context_sums(loaded, contexts, continuations)]


#: a decoder call's fixed cost in padded token slots: :func:`length_groups` splits a batch of
#: continuations by length only where the padding it saves outweighs another call
CALL_SLOTS = 16


def length_groups(lengths: Sequence[int], call_slots: int = CALL_SLOTS) -> list[np.ndarray]:
    """Row indices in length-sorted groups that minimise the padded size of the batches
    (sum of rows x longest) plus ``call_slots`` per batch: an exact split of the sorted rows
    by dynamic programming (a batch mixing one long continuation with many short ones pads
    every short one to the long one's length)."""
    order = np.argsort(lengths, kind="stable")
    sizes = np.asarray(lengths)[order]
    n = len(sizes)
    best, cut = np.zeros(n + 1), np.zeros(n + 1, dtype=int)
    for end in range(1, n + 1):  # the last group is rows start..end-1 of the sorted order
        costs = [best[start] + (end - start) * sizes[end - 1] + call_slots for start in range(end)]
        cut[end] = int(np.argmin(costs))
        best[end] = costs[cut[end]]
    groups, end = [], n
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


def shared_context_sums(
    loaded: LoadedModel, contexts: Sequence[str], continuations: Sequence[Sequence[str]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per continuation set: the summed log-probability of each continuation's tokens given its
    context, and the number of those tokens (as :func:`continuation_logprobs`, whose
    tokenisation it shares: the context with the BOS, each continuation on its own).

    The contexts run once (left-padded); their key/value cache is selected for every
    continuation, and all sets' continuations run together, in batches of similar length
    (:func:`length_groups`) rather than one batch per set; the LM head runs at the
    continuation positions only. All contexts go in one batch: callers batch them.
    """
    pad, n_sets = pad_id(loaded), len(continuations)
    if n_sets == 0:
        return []
    ids, mask = pad_rows([_context_ids(loaded, c) for c in contexts], pad, side="left")
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    # row i * n_sets + k: continuation set k of context i
    tails = [_continuation_ids(loaded, s[i]) for i in range(len(contexts)) for s in continuations]
    states: list[torch.Tensor] = [torch.empty(0)] * len(tails)
    with torch.inference_mode():
        first = decoder_forward(loaded, ids, mask, position_ids=positions, use_cache=True)
        last = first.last_hidden_state[:, -1:]
        for rows in length_groups([len(t) for t in tails], CALL_SLOTS):
            of = torch.as_tensor(rows // n_sets)  # each row's context
            cache = copy.deepcopy(first.past_key_values)  # the forward appends to it in place
            cache.batch_select_indices(of)  # CPU indices serve any device
            tail_ids, tail_mask = pad_rows([tails[r] for r in rows], pad)
            rest = decoder_forward(
                loaded,
                tail_ids,
                torch.cat([mask[of], tail_mask], dim=1),
                position_ids=mask.sum(-1)[of][:, None] + torch.arange(tail_ids.shape[1])[None, :],
                past_key_values=cache,
                use_cache=True,
            ).last_hidden_state
            # the state before tail token j: the context's last one, then the tail's own
            before = torch.cat([last[of.to(last.device)], rest[:, :-1]], dim=1)
            for j, r in enumerate(rows):
                states[r] = before[j, : len(tails[r])]
        targets = torch.tensor([x for t in tails for x in t], device=last.device)
        picked = token_logprobs(loaded, torch.cat(states), targets)
    totals = np.array([float(p.sum()) for p in picked.split([len(t) for t in tails])])
    counts = np.array([len(t) for t in tails], dtype=float)
    shape = (len(contexts), n_sets)
    return list(zip(totals.reshape(shape).T, counts.reshape(shape).T, strict=True))


def _last_states(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The state at each row's last real token (right padding)."""
    last = (mask.sum(dim=1) - 1).to(hidden.device)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


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
    rows = torch.tensor([pos[0], neg[0]], device=loaded.model.get_output_embeddings().weight.device)
    seqs = [encode(loaded, p, special=True) for p in prompts]
    margins = np.zeros(len(seqs))
    order = np.argsort([len(s) for s in seqs])
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids, mask = pad_rows([seqs[i] for i in batch], pad_id(loaded))
        with torch.inference_mode():
            hidden = decoder_forward(loaded, ids, mask).last_hidden_state
            logits = lm_head_logits(loaded, _last_states(hidden, mask), rows)
        margins[batch] = (logits[:, 0] - logits[:, 1]).cpu().numpy()
    return margins


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens all rows share at the start, leaving each row at least one token of its own."""
    shortest = min(len(r) for r in rows)
    length = 0
    while length < shortest - 1 and len({r[length] for r in rows}) == 1:
        length += 1
    return length


def next_token_logits(
    loaded: LoadedModel,
    rows: Sequence[Sequence[int]],
    batch_size: int = 8,
    share_prefix: bool = True,
) -> torch.Tensor:
    """Float32 next-token logits (rows x vocabulary) after each token row, in right-padded
    batches of ``batch_size``.

    With ``share_prefix`` the rows' common prefix runs once and its key/value cache is copied
    for each batch of suffixes: the same logits up to float rounding, and any hook active
    around the call sees the prefix once and every suffix.
    """
    n_prefix = common_prefix_length(rows) if share_prefix else 0
    pad = pad_id(loaded)
    out = []
    with torch.inference_mode():
        cache = None
        if n_prefix:
            prefix = torch.tensor([list(rows[0][:n_prefix])])
            cache = decoder_forward(loaded, prefix, None, use_cache=True).past_key_values
        for start in range(0, len(rows), batch_size):
            ids, mask = pad_rows([r[n_prefix:] for r in rows[start : start + batch_size]], pad)
            kwargs, full_mask = {}, mask
            if cache is not None:
                batch_cache = copy.deepcopy(cache)  # the forward appends to the cache in place
                batch_cache.batch_repeat_interleave(len(ids))
                kwargs = {"past_key_values": batch_cache, "use_cache": True}
                full_mask = torch.cat([torch.ones(len(ids), n_prefix, dtype=mask.dtype), mask], 1)
            hidden = decoder_forward(loaded, ids, full_mask, **kwargs).last_hidden_state
            out.append(_last_states(hidden, mask))
        return lm_head_logits(loaded, torch.cat(out))


def token_nll(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 8) -> np.ndarray:
    """Per text: [summed negative log-likelihood, number of predicted tokens] (every token of
    the text is predicted, the first after the BOS or :func:`start_ids`)."""
    out = np.zeros((len(texts), 2))
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start : start + batch_size])
        totals, counts = continuation_logprobs(
            loaded, [""] * len(chunk), chunk, batch_size=batch_size
        )
        out[start : start + len(chunk), 0] = -totals
        out[start : start + len(chunk), 1] = counts
    return out


def perplexity(loaded: LoadedModel, texts: Sequence[str], batch_size: int = 8) -> float:
    """Token-level perplexity of ``texts``: exp of the mean negative log-likelihood per token."""
    nll = token_nll(loaded, list(texts), batch_size=batch_size)
    return float(np.exp(nll[:, 0].sum() / nll[:, 1].sum()))
