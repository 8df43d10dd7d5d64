"""Calibration sets for importance scores: requests, responses and the response-only loss mask.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) A calibration set is
a list of (prompt, response) pairs. Each pair is tokenised as ``prompt + response``; the labels
of the prompt tokens are ``-100`` so that the cross-entropy (and therefore every gradient-based
score) comes from the response tokens only, as in Wei et al.'s "disentangle" mode. A plain text
(retain set) is a pair with an empty prompt: every token is then scored.

Requests are shown to a model in its own format: the chat template when the tokenizer has one
(SmolLM2-Instruct), otherwise :data:`BASE_TEMPLATE` (Gemma-3-270M base).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from moralkit.models.generation import chat_text, has_chat_template

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: how a request is shown to a model without a chat template (a plain question/answer frame)
BASE_TEMPLATE = "Question: {prompt}\nAnswer:"
IGNORE_INDEX = -100  # the label transformers' cross-entropy skips


@dataclass(frozen=True)
class CalibrationSet:
    """Named (prompt, response) pairs; prompts are raw requests (formatted per model later).

    ``prompts`` may be empty strings (plain text: every token of the response is scored).
    """

    name: str
    prompts: tuple[str, ...]
    responses: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.responses):
            raise ValueError(
                f"calibration set {self.name!r}: {len(self.prompts)} prompts but "
                f"{len(self.responses)} responses"
            )
        if not self.responses:
            raise ValueError(f"calibration set {self.name!r} is empty")
        if any(not r.strip() for r in self.responses):
            raise ValueError(f"calibration set {self.name!r} has an empty response")

    @classmethod
    def from_texts(cls, name: str, texts: Sequence[str]) -> CalibrationSet:
        """Plain texts (e.g. benign retain text): empty prompts, every token scored."""
        return cls(name, tuple("" for _ in texts), tuple(str(t) for t in texts))

    def __len__(self) -> int:
        return len(self.responses)

    @property
    def content_hash(self) -> str:
        """sha256 of the pairs (not the name): the cache key of scores on this set."""
        payload = json.dumps([self.prompts, self.responses], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def subset(self, name: str, indices: Sequence[int]) -> CalibrationSet:
        """The pairs at ``indices``, under a new name."""
        return CalibrationSet(
            name,
            tuple(self.prompts[i] for i in indices),
            tuple(self.responses[i] for i in indices),
        )


def format_request(tokenizer: PreTrainedTokenizerBase, request: str) -> str:
    """``request`` as the model sees it: chat template (generation prompt) or BASE_TEMPLATE."""
    return chat_text(tokenizer, request, fallback=BASE_TEMPLATE) if request else ""


def _ids(tokenizer: PreTrainedTokenizerBase, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"]) if text else []


def encode_example(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_tokens: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, labels)`` of one pair; labels are ``-100`` on the prompt tokens.

    The formatted prompt and the response are tokenised separately (so the response's tokens
    are exactly its own) and joined; a chat template already holds its special tokens, other
    prompts get the tokenizer's BOS. Sequences are cut to ``max_tokens``; a prompt that fills
    the window by itself (a long chat template, such as a guard model's) keeps its end (the turn
    the response answers) and leaves half the window to the response.
    """
    formatted = format_request(tokenizer, prompt)
    chat = bool(prompt) and has_chat_template(tokenizer)
    head = _ids(tokenizer, formatted, special=not chat)
    if not head:  # plain text: a BOS (if any) so that the first token is predicted too
        bos = tokenizer.bos_token_id
        head = [bos] if bos is not None else []
    tail = _ids(tokenizer, (" " if prompt and not chat else "") + response, special=False)
    if not tail:
        raise ValueError(f"response tokenises to nothing: {response!r}")
    if len(head) >= max_tokens - 1:
        head = head[-(max_tokens - min(len(tail), max(1, max_tokens // 2))) :]
    ids = (head + tail)[:max_tokens]
    labels = ([IGNORE_INDEX] * len(head) + tail)[:max_tokens]
    if all(x == IGNORE_INDEX for x in labels[1:]):
        raise ValueError(f"max_tokens={max_tokens} leaves no response token to score")
    return torch.tensor([ids]), torch.tensor([labels])
