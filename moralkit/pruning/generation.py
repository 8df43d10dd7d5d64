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

import pandas as pd

from moralkit.data.harmful import COMPLETION_PREFIX, N_EVAL_PROMPTS, advbench_table
from moralkit.io import atomic_write_text
from moralkit.models.decoder import find_decoder
from moralkit.models.generation import generate, greedy, has_chat_template
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
    name, weights = _generator(model)
    key = hashlib.sha256(
        json.dumps(
            [name, weights, list(map(int, indices)), max_new_tokens, COMPLETION_PREFIX]
        ).encode()
    ).hexdigest()[:20]
    path = cache_dir("harmful-completions") / f"{name.replace('/', '--')}-{key}.json"
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
    table["response"] = [COMPLETION_PREFIX.strip() + " " + t for t in texts]
    table["generator"] = name
    table = table[["index", "prompt", "group", "response", "generator"]]
    if weights is not None:
        atomic_write_text(json.dumps(table.to_dict("records"), ensure_ascii=False), path)
    return table
