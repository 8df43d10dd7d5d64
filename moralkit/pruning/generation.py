"""Greedy answers for harmfulness checks, and the offline harmful completions.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) Greedy decoding, as
Wei et al.'s deterministic setting (temperature 0), so that a pruned and an unpruned model are
compared on the same decoding (:mod:`moralkit.models.generation`). Answers under a mask are not
cached: the caller's weights may be pruned in memory, which a weights hash would not see. The
harmful completions of the unpruned base model are cached (:func:`harmful_completions`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from moralkit.data.harmful import COMPLETION_PREFIX, N_EVAL_PROMPTS, advbench_table
from moralkit.io import atomic_write_text
from moralkit.models.decoder import find_decoder
from moralkit.models.generation import (
    generate,
    generate_ids,
    greedy,
    has_chat_template,
    padding_side,
)
from moralkit.models.scoring import decoder_forward, encode, lm_head_logits, pad_id, pad_rows
from moralkit.paths import cache_dir
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
    """Greedy continuations of each request shown in the model's format (+ ``prefix``),
    stripped. ``num_threads`` as in :func:`cpu_threads` (None: torch's current setting)."""
    texts = [format_request(loaded.tokenizer, r) + prefix for r in requests]
    special = not has_chat_template(loaded.tokenizer)  # a template holds its special tokens
    with torch_threads(cpu_threads(loaded, num_threads)):
        out = generate(loaded, texts, greedy(max_new_tokens), special, batch_size, None, progress)
    return [text.strip() for text in out]


def _generator(model: str | LoadedModel) -> tuple[str, str | None]:
    """(name, weights hash) of a model, without loading it when its identity is known."""
    if not isinstance(model, str):
        return model.name, model.weights_hash
    from moralkit.models import model_identity

    identity = model_identity(model)
    return model, identity.weights_hash if identity is not None else None


def harmful_completions(
    model: str | LoadedModel,
    indices: Sequence[int],
    max_new_tokens: int = 48,
    progress: bool = True,
    num_threads: int | str | None = "auto",
) -> pd.DataFrame:
    """Greedy completions of AdvBench requests by ``model`` (a base model), cached.

    ``model`` is a registry name (loaded only when the cache misses) or a loaded model. The
    model continues ``request`` + :data:`~moralkit.data.harmful.COMPLETION_PREFIX`; the
    returned ``response`` is the prefix plus the continuation. Refuses evaluation prompts
    (index < N_EVAL_PROMPTS). ``num_threads``: torch threads while generating ("auto": timed
    on the model, None: torch's current setting); a speed setting, so not part of the cache
    key. Columns: index, prompt, group, response, generator.
    """
    bad = [i for i in indices if i < N_EVAL_PROMPTS]
    if bad:
        raise ValueError(f"indices {bad[:5]} are evaluation prompts (< {N_EVAL_PROMPTS})")
    table = advbench_table().set_index("index").loc[list(indices)].reset_index()
    key = [list(map(int, indices)), max_new_tokens, COMPLETION_PREFIX]
    return prefixed_completions(model, table, max_new_tokens, key, progress, num_threads)


def benign_completions(
    model: str | LoadedModel,
    requests: pd.DataFrame,
    max_new_tokens: int = 48,
    progress: bool = True,
    num_threads: int | str | None = "auto",
) -> pd.DataFrame:
    """Completions of benign requests (:func:`~moralkit.data.harmful.benign_requests`) by the
    same model, with the same prefix and decoding as :func:`harmful_completions`: a benign set
    in the harmful set's format. Cached; columns as :func:`harmful_completions`."""
    key = ["benign", list(requests["prompt"]), max_new_tokens, COMPLETION_PREFIX]
    return prefixed_completions(model, requests, max_new_tokens, key, progress, num_threads)


def prefixed_completions(
    model: str | LoadedModel,
    table: pd.DataFrame,
    max_new_tokens: int,
    key: list,
    progress: bool = True,
    num_threads: int | str | None = "auto",
) -> pd.DataFrame:
    """Greedy continuations of ``table["prompt"]`` + COMPLETION_PREFIX by ``model``, cached
    under ``key`` (with the model's name and weights hash)."""
    name, weights = _generator(model)
    digest = hashlib.sha256(json.dumps([name, weights, *key]).encode()).hexdigest()[:20]
    path = cache_dir("harmful-completions") / f"{name.replace('/', '--')}-{digest}.json"
    if weights is not None and path.exists():
        return pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    if isinstance(model, str):
        from moralkit.models import load_model

        model = load_model(model)
    texts = generate_greedy(
        model,
        table["prompt"].tolist(),
        max_new_tokens,
        prefix=COMPLETION_PREFIX,
        progress=progress,
        num_threads=num_threads,
    )
    table = table.assign(response=[COMPLETION_PREFIX.strip() + " " + t for t in texts])
    table = table.assign(generator=name)[["index", "prompt", "group", "response", "generator"]]
    if weights is not None:
        atomic_write_text(json.dumps(table.to_dict("records"), ensure_ascii=False), path)
    return table


def greedy_answers(
    loaded: LoadedModel, requests: Sequence[str], max_new_tokens: int, batch_size: int = 8
) -> tuple[list[str], list[list[int]]]:
    """Greedy answers as :func:`generate_greedy` gives them (stripped texts) and the new token
    ids behind each, cut after the first end-of-sequence token (the ids
    :func:`keeps_greedy` checks)."""
    tok = loaded.tokenizer
    texts = [format_request(tok, r) for r in requests]
    special = not has_chat_template(tok)
    stops = _stop_ids(loaded)
    ids: list[list[int]] = []
    with padding_side(tok, "left"):
        for start in range(0, len(texts), batch_size):
            batch = tok(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=special,
            )
            for row in generate_ids(loaded, batch, greedy(max_new_tokens)).tolist():
                end = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
                ids.append(row[:end])
    answers = [tok.decode(row, skip_special_tokens=True).strip() for row in ids]
    return answers, ids


def _stop_ids(loaded: LoadedModel) -> set[int]:
    # a tuple, not a set: chat models' generation configs list several end-of-turn ids
    found = (
        loaded.tokenizer.eos_token_id,
        getattr(loaded.model.generation_config, "eos_token_id", None),
    )
    out: set[int] = set()
    for x in found:
        out |= set(x) if isinstance(x, list | tuple) else ({x} if x is not None else set())
    return out


def keeps_greedy(
    loaded: LoadedModel,
    requests: Sequence[str],
    answers: Sequence[Sequence[int]],
    batch_size: int = 8,
) -> np.ndarray:
    """Per request: True when ``answers[i]`` (new token ids) is still the greedy answer, i.e.
    its every token is the argmax after the request and the tokens before it. One
    teacher-forced pass instead of a decoding loop: a mask that leaves an answer's every
    argmax in place leaves the greedy answer unchanged (up to float ties between batch
    layouts, as any two batched generations)."""
    tok = loaded.tokenizer
    special = not has_chat_template(tok)
    heads = [encode(loaded, format_request(tok, r), special) for r in requests]
    keep = np.zeros(len(requests), dtype=bool)
    for start in range(0, len(requests), batch_size):
        rows = list(range(start, min(start + batch_size, len(requests))))
        seqs = [heads[i] + list(answers[i]) for i in rows]
        with torch.inference_mode():
            hidden = decoder_forward(loaded, *pad_rows(seqs, pad_id(loaded))).last_hidden_state
            spans = [(len(heads[i]) - 1, len(heads[i]) - 1 + len(answers[i])) for i in rows]
            states = torch.cat([hidden[k, a:b] for k, (a, b) in enumerate(spans)])
            best = lm_head_logits(loaded, states).argmax(-1).cpu().tolist()
        offset = 0
        for i in rows:
            n = len(answers[i])
            keep[i] = best[offset : offset + n] == list(answers[i])
            offset += n
    return keep
