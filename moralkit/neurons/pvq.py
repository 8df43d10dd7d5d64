"""The PVQ questionnaire answered by option log-probabilities, and fluency and sample answers.

paper §7(a); book: Methods › Value neurons, methods/value-neurons.md. Each PVQ item is shown
with six Likert options A-F ("Not like me at all" ... "Very much like me"), as in the probable
author code. Instead of sampling an answer, the model's next-token log-probabilities of the six
option letters are read (each letter with and without a leading space, summed) and
renormalised over the six: a distribution per item, and its expected rating 1-6. Reverse-keyed
items are reversed as ValueBench scores them (:func:`moralkit.data.valuebench.keyed_rating`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from moralkit.data.valuebench import keyed_rating
from moralkit.neurons.batching import (
    chat_prompt,
    encode_batches,
    has_chat_template,
    last_token_logits,
    model_device,
    padding_side,
    shared_prefix_last_logits,
    token_nll,
)

OPTIONS: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")
OPTION_LABELS: tuple[str, ...] = (
    "Not like me at all",
    "Not like me",
    "A little like me",
    "Somewhat like me",
    "Like me",
    "Very much like me",
)
PVQ_TEMPLATE = (
    "How much is this person like you? Answer with one letter.\n"
    + "\n".join(f"{o}: {label}" for o, label in zip(OPTIONS, OPTION_LABELS, strict=True))
    + "\nPerson: {item}\n"
)
#: An open question for the sample answers and the judged rubric.
ANSWER_TEMPLATE = "Statement: {item}\nDo you agree? Explain in one or two sentences."


@dataclass(frozen=True)
class PVQConfig:
    """How items become prompts and how many are scored at once."""

    template: str = PVQ_TEMPLATE
    answer_template: str = ANSWER_TEMPLATE
    answer_prefix: str = "Answer:"
    use_chat_template: bool = True
    batch_size: int = 8
    max_length: int = 256
    share_prefix: bool = True  # run the prompts' common prefix once (same result, faster)


def pvq_prompts(
    tokenizer, items: Sequence[str], config: PVQConfig, template: str | None = None
) -> list[str]:
    """One prompt per item: the template as a chat user turn (if the model has a chat
    template), else the template followed by ``answer_prefix``."""
    prompts = []
    for item in items:
        text = (template or config.template).format(item=item)
        prompt = chat_prompt(tokenizer, text, config.use_chat_template)
        if prompt == text:
            prompt = text + config.answer_prefix
        prompts.append(prompt)
    return prompts


def option_token_ids(tokenizer) -> list[list[int]]:
    """Per option, the single-token encodings of "A" and " A" (whichever exist)."""
    ids = []
    for option in OPTIONS:
        variants = []
        for text in (option, " " + option):
            encoded = tokenizer.encode(text, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in variants:
                variants.append(encoded[0])
        if not variants:
            raise ValueError(f"option {option!r} is not a single token for this tokenizer")
        ids.append(variants)
    return ids


@torch.no_grad()
def option_logprobs(model, tokenizer, items: Sequence[str], config: PVQConfig) -> np.ndarray:
    """(n_items, 6) log-probabilities of the options A-F, renormalised over the six."""
    prompts = pvq_prompts(tokenizer, items, config)
    ids = option_token_ids(tokenizer)
    special = not has_chat_template(tokenizer, config.use_chat_template)
    if config.share_prefix:
        rows = [
            tokenizer(p, add_special_tokens=special, truncation=True, max_length=config.max_length)[
                "input_ids"
            ]
            for p in prompts
        ]
        logits = [shared_prefix_last_logits(model, tokenizer, rows, config.batch_size)]
    else:
        batches = encode_batches(
            tokenizer,
            prompts,
            config.batch_size,
            config.max_length,
            model_device(model),
            add_special_tokens=special,
        )
        logits = [last_token_logits(model, batch) for batch in batches]
    out = []
    for chunk in logits:
        logprobs = torch.log_softmax(chunk, dim=-1)
        per_option = torch.stack([logprobs[:, v].logsumexp(-1) for v in ids], dim=-1)
        out.append(torch.log_softmax(per_option, dim=-1).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def expected_rating(logprobs: np.ndarray, agreement: Sequence[int] | None = None) -> np.ndarray:
    """Expected rating 1-6 per item, reverse-keyed items reversed."""
    probs = np.exp(np.asarray(logprobs, dtype=np.float64))
    rating = probs @ np.arange(1, len(OPTIONS) + 1)
    if agreement is None:
        return rating
    return keyed_rating(rating, np.asarray(agreement), 1.0, float(len(OPTIONS)))


@torch.no_grad()
def perplexity(model, tokenizer, texts: Sequence[str], batch_size: int = 8) -> float:
    """Token-level perplexity of ``model`` on ``texts`` (the fluency check)."""
    nll, count = 0.0, 0
    for batch in encode_batches(tokenizer, texts, batch_size, 128, model_device(model)):
        part, n = token_nll(model, batch)
        nll, count = nll + part, count + n
    return float(np.exp(nll / max(count, 1)))


@torch.no_grad()
def generate_answer(
    model, tokenizer, item: str, config: PVQConfig, max_new_tokens: int = 24
) -> str:
    """A greedy answer to the open question about one item (``answer_template``)."""
    prompt = pvq_prompts(tokenizer, [item], config, config.answer_template)[0]
    with padding_side(tokenizer, "left"):
        special = not has_chat_template(tokenizer, config.use_chat_template)
        batch = tokenizer(prompt, return_tensors="pt", add_special_tokens=special)
        batch = batch.to(model_device(model))
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
