"""Chat formatting and generation with a loaded model: one decoding path for every chapter.

(book: Methods › Steering, methods/steering.md, and Methods › Evaluation, methods/evaluation.md;
used by chapters 08, 09 and 10.)

- :func:`chat_text`: a prompt as the model's user turn (system turn optional, thinking disabled
  where the template has the switch), or a plain layout for models without a chat template;
- :class:`DecodingConfig`: sampling settings (:func:`greedy` for deterministic decoding);
- :func:`generate`: continuations of formatted texts, left-padded batches, a fixed seed;
- :func:`generate_ids`: the same on an already tokenised batch (the generated ids).

Only the new tokens are decoded, special tokens dropped. A text holds its special tokens when a
chat template wrapped it, so the tokenizer adds BOS only to texts without a template.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm

from moralkit.models.decoder import find_decoder, input_device

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from moralkit.models import LoadedModel

#: the layout of a prompt for a model without a chat template (``{system}``: the system
#: prompt and a blank line, or nothing)
PLAIN_CHAT = "{system}User: {prompt}\nAssistant:"


@dataclass(frozen=True)
class DecodingConfig:
    """Sampling settings. Defaults: the paper's steered setting (HF ``generate``, §4.5)."""

    max_new_tokens: int = 512
    do_sample: bool = True
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    seed: int = 0

    def generate_kwargs(self) -> dict:
        """Keyword arguments for ``model.generate``."""
        kwargs: dict = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        if self.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = self.repetition_penalty
        return kwargs


def greedy(max_new_tokens: int) -> DecodingConfig:
    """Deterministic decoding (temperature 0, no repetition penalty)."""
    return DecodingConfig(max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=1.0)


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the tokenizer has a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def chat_text(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    system_prompt: str | None = None,
    fallback: str = PLAIN_CHAT,
    use_template: bool = True,
) -> str:
    """``prompt`` as a user turn with the generation prompt, in the model's chat template
    (thinking disabled where the template has ``enable_thinking``).

    Without a chat template (or with ``use_template=False``) the text is ``fallback`` with
    ``{system}`` (the system prompt and a blank line, or nothing) and ``{prompt}`` filled in.
    """
    if use_template and has_chat_template(tokenizer):
        messages = [{"role": "user", "content": prompt}]
        if system_prompt:
            messages.insert(0, {"role": "system", "content": system_prompt})
        extra = (
            {"enable_thinking": False} if "enable_thinking" in str(tokenizer.chat_template) else {}
        )
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **extra
        )
    head = f"{system_prompt}\n\n" if system_prompt else ""
    return fallback.replace("{system}", head).replace("{prompt}", prompt)


@contextmanager
def padding_side(tokenizer: PreTrainedTokenizerBase, side: str) -> Iterator[None]:
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


def generate_ids(
    loaded: LoadedModel,
    batch: dict[str, torch.Tensor],
    decoding: DecodingConfig,
    seed: int | None = None,
    **extra,
) -> torch.Tensor:
    """New token ids after each row of a left-padded ``batch`` (``input_ids``,
    ``attention_mask``); ``seed`` seeds torch first; ``extra`` goes to ``generate``."""
    tokenizer = loaded.tokenizer
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = input_device(find_decoder(loaded.model))
    inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}
    if seed is not None:
        torch.manual_seed(seed)
    with torch.inference_mode():
        out = loaded.model.generate(
            **inputs, **decoding.generate_kwargs(), pad_token_id=pad, **extra
        )
    return out[:, inputs["input_ids"].shape[1] :]


def generate(
    loaded: LoadedModel,
    texts: Sequence[str],
    decoding: DecodingConfig,
    special_tokens: bool,
    batch_size: int = 8,
    seed: int | None = None,
    progress: bool = False,
) -> list[str]:
    """The continuation of each formatted text (new tokens only, special tokens dropped).

    ``special_tokens``: let the tokenizer add its BOS (texts no chat template wrapped).
    Batches are left-padded; ``seed`` seeds torch before each batch (sampling with one text
    per call gives each text its own reproducible draw).
    """
    tokenizer = loaded.tokenizer
    out: list[str] = []
    with padding_side(tokenizer, "left"):
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc=f"{loaded.name}: generating", disable=not progress):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                return_tensors="pt",
                padding=True,
                add_special_tokens=special_tokens,
            )
            new = generate_ids(loaded, batch, decoding, seed)
            out.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return out
