"""From texts to token ids: input checks, the prompt template, tokenisation and truncation.

Each text goes through the template ``"{action} is morally"`` as raw text with the tokenizer's
default special tokens (BOS where the tokenizer adds one), as in the paper's diagnosis script;
with a system prompt the templated statement becomes the user turn of the model's chat template
(paper §2.1; book: Methods › Activations, methods/activations.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from moralkit.activation_set import POOLINGS

DEFAULT_TEMPLATE = "{action} is morally"
# Longest prompt, in tokens, that is run: longer ones keep their first DEFAULT_MAX_TOKENS tokens
# (and never more than the model's positions). A bound on memory: attention grows with the
# square of the length, and one 50k-token text was enough to OOM-kill a laptop. The paper's
# extraction truncated at 128 tokens; pass max_tokens=128 to match it exactly.
DEFAULT_MAX_TOKENS = 2048


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """``texts`` as a list of str; TypeError naming ``name`` for a bare string or a non-str item.

    A bare string would otherwise be iterated character by character, and ``None`` would become
    the text "None".
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"{name} must be a list of texts, not a single {type(texts).__name__} "
            f"({texts[:40]!r}); wrap it: {name}=[text]"
        )
    try:
        items = list(texts)
    except TypeError:
        raise TypeError(f"{name} must be a list of texts, not {type(texts).__name__}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"{name}[{i}] is {type(item).__name__} ({item!r}), not str: every text must be "
                "a string (drop or fill missing texts first)"
            )
    if not items:
        raise ValueError(f"{name} is empty: no texts to extract")
    return items


def check_poolings(poolings: Sequence[str] | str) -> tuple[str, ...]:
    """Unique pooling names in the given order; ValueError for an unknown one."""
    if isinstance(poolings, str):
        poolings = (poolings,)
    chosen = tuple(dict.fromkeys(poolings))
    bad = [p for p in chosen if p not in POOLINGS]
    if bad or not chosen:
        raise ValueError(f"unknown pooling {bad or poolings!r}; expected some of {POOLINGS}")
    return chosen


def check_max_tokens(max_tokens: int, model_positions: int | None) -> int:
    """The truncation length actually used: ``max_tokens``, at most the model's positions."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a whole number >= 1, not {max_tokens!r}")
    return min(max_tokens, model_positions) if model_positions else max_tokens


def build_prompts(
    tokenizer: Any,
    texts: Sequence[str],
    template: str = DEFAULT_TEMPLATE,
    system_prompt: str | None = None,
) -> list[str]:
    """Fill ``template`` with each text; with ``system_prompt``, wrap it as a chat user turn.

    The chat form is the "prompted alignment" manipulation: system prompt + the templated
    statement as the user's message, rendered by the model's own chat template (no generation
    prompt, so the statement's turn is the last thing the model reads).
    """
    if "{action}" not in template:
        raise ValueError(f"template {template!r} must contain the placeholder '{{action}}'")
    statements = [template.replace("{action}", str(text)) for text in texts]
    if system_prompt is None:
        return statements
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            "system_prompt needs a chat template, but this model's tokenizer has none "
            "(base models usually don't); use an instruct model or system_prompt=None"
        )
    return [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system_prompt}, {"role": "user", "content": s}],
            tokenize=False,
            add_generation_prompt=False,
        )
        for s in statements
    ]


def tokenize_prompts(tokenizer: Any, prompts: Sequence[str], chat: bool) -> list[list[int]]:
    """Token ids per prompt; default special tokens for raw text, none for rendered chats."""
    encoded = tokenizer(list(prompts), add_special_tokens=not chat)["input_ids"]
    empty = [i for i, ids in enumerate(encoded) if len(ids) == 0]
    if empty:
        raise ValueError(f"prompts {empty[:5]} tokenise to zero tokens (empty text and no BOS)")
    return [list(ids) for ids in encoded]


def truncate_sequences(
    sequences: list[list[int]], max_tokens: int, warn: bool = True
) -> tuple[list[list[int]], int]:
    """Keep the first ``max_tokens`` ids of each sequence; returns (sequences, n truncated).

    The head is kept, as the tokenizer's own truncation (and the paper's) does; a truncated
    prompt therefore loses its end, template suffix included. Warns with the count.
    """
    n_truncated = sum(len(s) > max_tokens for s in sequences)
    if n_truncated and warn:
        longest = max(len(s) for s in sequences)
        warnings.warn(
            f"{n_truncated} of {len(sequences)} prompts are longer than max_tokens={max_tokens} "
            f"tokens (longest {longest}) and were truncated to their first {max_tokens} tokens",
            UserWarning,
            stacklevel=4,
        )
    return [s[:max_tokens] for s in sequences], n_truncated
