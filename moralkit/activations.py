"""Pooled residual-stream activations, fast, and cached on disk (paper-methods §2.1, §4.1).

What is extracted follows the paper's diagnosis script: each text goes through the template
``"{action} is morally"`` as raw text with the tokenizer's default special tokens (BOS where the
tokenizer adds one), and the residual stream after every requested decoder block is pooled two
ways: the mean over real tokens (BOS included) and the last real token.

How it differs from the paper's loop, on purpose (same numbers up to float rounding, less work):

- forward hooks sit on the decoder blocks themselves, and only the text decoder runs: no LM
  head, no logits (Gemma-3's head alone is 168M parameters), no KV cache; the forward stops
  right after the deepest requested block (its hook raises a private exception);
- texts are sorted by length and **packed**: several texts share a row, each with its own
  position ids 0..n-1; transformers reads a position reset as a new sequence and keeps each
  text's attention inside its own span (sliding windows included). Almost no compute goes to
  padding, and attention cost is bounded by the row width. This is checked on each model before
  use (:func:`packing_matches_padding`) with a fallback to padding;
- in the padded layout, position ids come from the attention mask, and the last-token index is
  the last *real* token, so left and right padding give the same result. The official code
  takes ``mask.sum() - 1`` under left padding, which points into the padding for every shorter
  sequence (paper-methods §9.4).

:func:`cached_activations` adds a content-addressed on-disk cache so that chapters sharing
records and model reuse one extraction.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from moralkit.activation_set import POOLINGS, ActivationSet
from moralkit.data.fetch import default_cache_dir
from moralkit.io import atomic_directory, remove_directory, sha256_of
from moralkit.models import loading
from moralkit.models.decoder import DecoderParts, find_decoder
from moralkit.models.loading import LoadedModel, ModelIdentity, normalise_dtype
from moralkit.threads import torch_threads

DEFAULT_TEMPLATE = "{action} is morally"
DEFAULT_BATCH_TOKENS = 2048
DEFAULT_ROW_WIDTH = 64
GPU_BATCH_TOKENS = 16384
CACHE_FORMAT_VERSION = 1
META_FILE = "meta.json"


class _StopForward(Exception):
    """Raised by the deepest requested layer's hook: nothing after it needs to run."""


# --------------------------------------------------------------------------- prompts
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


def resolve_layers(layers: Sequence[int] | int | None, n_layers: int) -> tuple[int, ...]:
    """Sorted unique 0-based decoder-layer indices; None means all ``n_layers``."""
    if layers is None:
        return tuple(range(n_layers))
    if isinstance(layers, (int, np.integer)):
        layers = [int(layers)]
    chosen = sorted({int(x) for x in layers})
    if not chosen:
        raise ValueError("layers is empty; pass None for all layers")
    bad = [x for x in chosen if not 0 <= x < n_layers]
    if bad:
        raise ValueError(
            f"layer {bad[0]} is out of range: the model has {n_layers} decoder layers "
            f"(valid indices 0..{n_layers - 1})"
        )
    return tuple(chosen)


def _check_poolings(poolings: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(poolings, str):
        poolings = (poolings,)
    chosen = tuple(dict.fromkeys(poolings))
    bad = [p for p in chosen if p not in POOLINGS]
    if bad or not chosen:
        raise ValueError(f"unknown pooling {bad or poolings!r}; expected some of {POOLINGS}")
    return chosen


# --------------------------------------------------------------------------- batching
@dataclass
class BatchLayout:
    """One forward pass: token ids laid out in rows, and where each text's tokens ended up.

    The flattened (row × width) positions split into contiguous ``runs`` (their lengths): one
    per text and one per stretch of padding; ``text_runs`` says which run is each text's, and
    ``last`` is the flat position of each text's last real token. Pooling reads only these, so
    padded and packed layouts pool alike.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    runs: torch.Tensor
    text_runs: torch.Tensor
    last: torch.Tensor
    lengths: torch.Tensor
    rows: np.ndarray  # original text index of each slot

    @property
    def n_real(self) -> int:
        return int(self.lengths.sum())

    def to(self, device: torch.device) -> BatchLayout:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return BatchLayout(
            move(self.input_ids),
            move(self.position_ids),
            move(self.attention_mask),
            move(self.runs),
            move(self.text_runs),
            move(self.last),
            move(self.lengths),
            self.rows,
        )


def plan_batches(lengths: Sequence[int], batch_tokens: int) -> list[np.ndarray]:
    """Padded mode: length-sorted batches whose size (rows × longest) fits the token budget.

    Longest first, so the peak memory and the slowest batch come at the start.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = lengths[order[start]]
        rows = max(1, batch_tokens // longest)
        batches.append(order[start : start + rows])
        start += rows
    return batches


def plan_packed_batches(
    lengths: Sequence[int], batch_tokens: int, row_width: int
) -> list[list[list[int]]]:
    """Packed mode: batches → rows → text indices, first-fit-decreasing into rows.

    A batch's rows are ``max(row_width, its longest text)`` tokens wide and there are
    ``batch_tokens // width`` of them, so almost no position is padding while attention stays
    confined to short rows (its cost grows with the row width, not the batch).
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches: list[list[list[int]]] = []
    rows: list[list[int]] = []
    room: list[int] = []
    width = n_rows = 0
    for idx in order:
        size = int(lengths[idx])
        slot = next((r for r, free in enumerate(room) if free >= size), None)
        if slot is None and len(rows) >= n_rows:  # batch full: start the next one
            if rows:
                batches.append(rows)
            width = max(row_width, size)
            n_rows = max(1, batch_tokens // width)
            rows, room = [], []
        if slot is None:
            rows.append([])
            room.append(width)
            slot = len(rows) - 1
        rows[slot].append(int(idx))
        room[slot] -= size
    if rows:
        batches.append(rows)
    return batches


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) padded to the longest sequence on ``side``."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', not {side!r}")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        cols = slice(0, len(seq)) if side == "right" else slice(width - len(seq), width)
        ids[row, cols] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def position_ids_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only (0 for padding): left padding = no padding."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, correct for left and right padding."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.to(positions.dtype)).argmax(dim=1)


def official_last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """The paper's ``mask.sum() - 1``: right only for right padding (kept for the comparison)."""
    return mask.sum(dim=1) - 1


def padded_layout(
    sequences: Sequence[Sequence[int]], rows: np.ndarray, pad_id: int, side: str
) -> BatchLayout:
    """One text per row, padded on ``side``; positions from the mask."""
    ids, mask = pad_batch(sequences, pad_id, side)
    n, width = ids.shape
    runs: list[int] = []
    text_runs: list[int] = []
    for seq in sequences:
        pad = width - len(seq)
        if pad and side == "left":
            runs.append(pad)
        text_runs.append(len(runs))
        runs.append(len(seq))
        if pad and side == "right":
            runs.append(pad)
    last = torch.arange(n) * width + last_token_index(mask)
    return BatchLayout(
        ids,
        position_ids_from_mask(mask),
        mask,
        torch.tensor(runs),
        torch.tensor(text_runs),
        last,
        mask.sum(1),
        np.asarray(rows),
    )


def packed_layout(
    sequences: Sequence[Sequence[int]], row_slots: Sequence[Sequence[int]], pad_id: int
) -> BatchLayout:
    """Several texts per row, each with its own positions 0..len-1 and no attention mask.

    transformers treats a position reset as a new sequence (packed format) and keeps every
    text's attention inside its own span, sliding windows included. Tail padding continues as
    one more "sequence" whose outputs are discarded. ``row_slots`` holds indices into
    ``sequences``.
    """
    width = max(sum(len(sequences[i]) for i in slots) for slots in row_slots)
    n_rows = len(row_slots)
    ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    positions = torch.zeros((n_rows, width), dtype=torch.long)
    runs: list[int] = []
    text_runs: list[int] = []
    last: list[int] = []
    order: list[int] = []
    for r, slots in enumerate(row_slots):
        col = 0
        for i in slots:
            size = len(sequences[i])
            ids[r, col : col + size] = torch.as_tensor(sequences[i], dtype=torch.long)
            positions[r, col : col + size] = torch.arange(size)
            text_runs.append(len(runs))
            runs.append(size)
            last.append(r * width + col + size - 1)
            order.append(i)
            col += size
        if col < width:
            positions[r, col:] = torch.arange(width - col)
            runs.append(width - col)
    run_lengths = torch.tensor(runs)
    text_index = torch.tensor(text_runs)
    return BatchLayout(
        ids,
        positions,
        None,
        run_lengths,
        text_index,
        torch.tensor(last),
        run_lengths[text_index],
        np.asarray(order),
    )


def pool_flat(
    hidden: torch.Tensor, layout: BatchLayout, poolings: Sequence[str]
) -> dict[str, torch.Tensor]:
    """Mean over each text's real tokens and/or its last real token, from (rows, width, d)."""
    flat = hidden.reshape(-1, hidden.shape[-1]).float()
    out: dict[str, torch.Tensor] = {}
    if "mean" in poolings:
        # One sum per contiguous run, padding runs included and then dropped: no mask multiply,
        # so inf/nan a kernel may leave in padding cannot leak into the means. (segment_reduce,
        # not index_add_: the latter is ~100x slower on a CPU shared with other processes.)
        sums = torch.segment_reduce(flat, "sum", lengths=layout.runs)[layout.text_runs]
        out["mean"] = sums / layout.lengths.unsqueeze(1).to(flat.dtype)
    if "last" in poolings:
        out["last"] = flat[layout.last]
    return out


@dataclass
class _Capture:
    """What the hooks write into: preallocated (n_layers, n_texts, d) arrays per pooling."""

    arrays: dict[str, np.ndarray]
    layer_pos: dict[int, int]
    deepest: int
    layout: BatchLayout | None = None
    calls: dict[int, int] = field(default_factory=dict)


@contextmanager
def capture_layers(parts: DecoderParts, capture: _Capture) -> Iterator[None]:
    """Forward hooks on the requested decoder blocks; always removed, even after errors."""

    def make_hook(layer: int):
        def hook(module, args, output):
            hidden = output[0] if isinstance(output, tuple) else output
            layout = capture.layout
            for pooling, values in pool_flat(hidden, layout, tuple(capture.arrays)).items():
                target = capture.arrays[pooling]
                target[capture.layer_pos[layer], layout.rows] = values.cpu().numpy()
            capture.calls[layer] = capture.calls.get(layer, 0) + 1
            if layer == capture.deepest:
                raise _StopForward  # nothing after this layer is needed

        return hook

    handles = [parts.layers[i].register_forward_hook(make_hook(i)) for i in capture.layer_pos]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _input_device(parts: DecoderParts) -> torch.device:
    for param in parts.text_model.parameters():
        return param.device
    return torch.device("cpu")


_THREAD_CHOICES: dict[tuple, int] = {}


def choose_num_threads(parts: DecoderParts, width: int, tokens: int) -> int:
    """1 or torch's thread count, whichever runs this model's first MLP block faster (CPU).

    On small shared machines more threads can be slower: when other processes hold a core, or
    when the "cores" are hyper-threads of one physical core, OpenMP threads wait on each other
    at every small operation (measured here: an elementwise op 25x slower with 2 threads than
    with 1 under load). The timing takes well under a second and is remembered per process.
    """
    default = torch.get_num_threads()
    block = parts.layers[0]
    mlp = getattr(block, "mlp", None)
    if default <= 1 or _input_device(parts).type != "cpu" or mlp is None:
        return default
    dtype = next(parts.text_model.parameters()).dtype
    key = (type(block).__name__, width, tokens, dtype, default)
    if key not in _THREAD_CHOICES:
        sample = torch.randn(1, min(tokens, 1024), width, dtype=dtype)

        def calls_per_second(threads: int) -> float:
            torch.set_num_threads(threads)
            mlp(sample)  # warm-up
            calls, started = 0, time.perf_counter()
            while calls < 2 or time.perf_counter() - started < 0.15:
                mlp(sample)
                calls += 1
            return calls / (time.perf_counter() - started)

        rates: dict[int, float] = {}
        try:
            with torch.inference_mode():
                for threads in (default, 1, default, 1):  # interleaved, best of two each
                    rates[threads] = max(rates.get(threads, 0.0), calls_per_second(threads))
        except Exception:  # noqa: BLE001 - an MLP with another signature: keep the default
            rates = {default: 1.0}
        finally:
            torch.set_num_threads(default)
        _THREAD_CHOICES[key] = max(rates, key=rates.get)
    return _THREAD_CHOICES[key]


def _run(parts: DecoderParts, layout: BatchLayout) -> None:
    try:
        parts.text_model(
            input_ids=layout.input_ids,
            attention_mask=layout.attention_mask,
            position_ids=layout.position_ids,
            use_cache=False,
        )
    except _StopForward:
        pass


def packing_matches_padding(
    loaded: LoadedModel, sequences: Sequence[Sequence[int]], pad_id: int
) -> bool:
    """Check on this model that packed texts give their unpacked layer-0 output (1e-4).

    Packing relies on the model building its attention mask from position resets; a model
    class that ignores them would let texts attend to each other. Checked once per model.
    """
    cached = getattr(loaded, "_packing_ok", None)
    if cached is not None:
        return cached
    pair = [list(sequences[0]), list(sequences[-1])]
    parts = find_decoder(loaded.model)
    device = _input_device(parts)
    results = []
    for layout in (
        packed_layout(pair, [[0, 1]], pad_id),
        padded_layout(pair, np.arange(2), pad_id, "right"),
    ):
        capture = _Capture(
            arrays={"mean": np.zeros((1, 2, loaded.hidden_size), np.float32)},
            layer_pos={0: 0},
            deepest=0,
        )
        capture.layout = layout.to(device)
        with torch.inference_mode(), capture_layers(parts, capture):
            _run(parts, capture.layout)
        results.append(capture.arrays["mean"][0])
    scale = max(1.0, float(np.abs(results[1]).max()))
    ok = bool(np.abs(results[0] - results[1]).max() <= 1e-4 * scale)
    loaded._packing_ok = ok  # type: ignore[attr-defined]
    return ok


# --------------------------------------------------------------------------- extraction
def extract_activations(
    loaded: LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int] | int | None = None,
    poolings: Sequence[str] = ("mean", "last"),
    template: str = DEFAULT_TEMPLATE,
    system_prompt: str | None = None,
    batch_tokens: int | None = None,
    packing: bool = True,
    row_width: int = DEFAULT_ROW_WIDTH,
    padding_side: str = "right",
    num_threads: int | str | None = "auto",
    progress: bool = True,
) -> ActivationSet:
    """Pooled residual streams after each requested decoder layer (paper-methods §2.1).

    Returns an :class:`ActivationSet` whose rows follow ``texts`` (duplicates are extracted
    twice; :func:`cached_activations` dedupes). ``batch_tokens`` bounds the positions per
    forward pass. With ``packing`` (default) several texts share a row of ``row_width`` tokens,
    each with its own positions and attention span (verified on the model first; falls back to
    padding if the model does not support it); without it, texts are padded on
    ``padding_side`` (which does not change the result: tested). Layer indices are 0-based;
    out-of-range ones raise ValueError. ``num_threads`` sets torch's CPU threads for this call:
    an int, None (torch's setting) or "auto" (default: :func:`choose_num_threads` times 1 thread
    against torch's setting on this model and takes the faster).
    """
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("no texts to extract")
    parts = find_decoder(loaded.model)
    device = _input_device(parts)
    if batch_tokens is None:  # CPU: cache-friendly batches; GPU: enough work per launch
        batch_tokens = DEFAULT_BATCH_TOKENS if device.type == "cpu" else GPU_BATCH_TOKENS
    if batch_tokens < 1 or row_width < 1:
        raise ValueError(
            f"batch_tokens and row_width must be positive ({batch_tokens}, {row_width})"
        )
    chosen_layers = resolve_layers(layers, loaded.n_layers)
    chosen_poolings = _check_poolings(poolings)
    tokenizer = loaded.tokenizer
    prompts = build_prompts(tokenizer, texts, template, system_prompt)
    sequences = tokenize_prompts(tokenizer, prompts, chat=system_prompt is not None)
    lengths = [len(s) for s in sequences]
    pad_id = tokenizer.pad_token_id
    if pad_id is None:  # padding is never attended to or pooled; any valid id works
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0

    packed = packing and len(sequences) > 1 and packing_matches_padding(loaded, sequences, pad_id)
    if packed:
        plan = plan_packed_batches(lengths, batch_tokens, row_width)
        layouts = (
            packed_layout(sequences, rows, pad_id) for rows in plan
        )  # indices are global, so `rows` index `sequences` directly
    else:
        plan = plan_batches(lengths, batch_tokens)
        layouts = (
            padded_layout([sequences[i] for i in rows], rows, pad_id, padding_side) for rows in plan
        )
    capture = _Capture(
        arrays={
            p: np.zeros((len(chosen_layers), len(texts), loaded.hidden_size), dtype=np.float32)
            for p in chosen_poolings
        },
        layer_pos={layer: i for i, layer in enumerate(chosen_layers)},
        deepest=max(chosen_layers),
    )
    n_tokens = int(sum(lengths))
    positions = 0
    started = time.perf_counter()
    bar = tqdm(total=n_tokens, desc=f"{loaded.name}: extracting", unit="tok", disable=not progress)
    if num_threads == "auto":
        num_threads = choose_num_threads(parts, loaded.hidden_size, batch_tokens)
    elif num_threads is None:
        num_threads = torch.get_num_threads()
    with torch.inference_mode(), capture_layers(parts, capture), torch_threads(int(num_threads)):
        for layout in layouts:
            capture.layout = layout.to(device)
            positions += layout.input_ids.numel()
            _run(parts, capture.layout)
            bar.update(layout.n_real)
    bar.close()
    wall = time.perf_counter() - started
    meta = {
        "model_id": loaded.name,
        "revision": loaded.revision,
        "weights_hash": loaded.weights_hash,
        "random_init": loaded.random_init,
        "seed": loaded.seed,
        "dtype": loaded.dtype,
        "device": loaded.device,
        "template": template,
        "system_prompt": system_prompt,
        "poolings": list(chosen_poolings),
        "n_texts": len(texts),
        "n_tokens": n_tokens,
        "positions_run": positions,
        "n_batches": len(plan),
        "batch_tokens": batch_tokens,
        "layout": f"packed (rows of >= {row_width})" if packed else f"padded ({padding_side})",
        "wall_s": round(wall, 3),
        "tokens_per_s": round(n_tokens / wall, 1) if wall > 0 else None,
        "torch_threads": int(num_threads),
    }
    return ActivationSet(capture.arrays, chosen_layers, loaded.n_layers, loaded.name, meta)


# --------------------------------------------------------------------------- cache
def activation_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """``<cache_dir or $MORALKIT_CACHE>/activations``."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / "activations"


def texts_hash(texts: Sequence[str]) -> str:
    """sha256 of the texts in order (length-prefixed, so no two lists collide)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def cache_key(
    identity: ModelIdentity,
    unique_texts: Sequence[str],
    layers: Sequence[int],
    poolings: Sequence[str],
    template: str,
    system_prompt: str | None,
    dtype: str,
    random_init: bool,
    seed: int,
) -> str:
    """The content address of an extraction: everything that changes its numbers."""
    payload = {
        "format": CACHE_FORMAT_VERSION,
        "model_id": identity.model_id,
        "revision": identity.revision,
        "weights_hash": identity.weights_hash,
        "random_init_seed": int(seed) if random_init else None,
        "texts": texts_hash(unique_texts),
        "template": template,
        "system_prompt": system_prompt,
        "poolings": sorted(poolings),
        "layers": [int(x) for x in layers],
        "dtype": dtype,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CorruptCacheEntry(Exception):
    """A cache entry whose meta, shapes or checksums do not match."""


def _read_entry(entry: Path, key: str) -> ActivationSet:
    try:
        meta = json.loads((entry / META_FILE).read_text())
    except (OSError, ValueError) as err:
        raise CorruptCacheEntry(f"unreadable {META_FILE}: {err}") from err
    if meta.get("cache_key") != key or meta.get("format") != CACHE_FORMAT_VERSION:
        raise CorruptCacheEntry("meta.json belongs to another key or cache format")
    arrays = {}
    for pooling, info in meta["files"].items():
        path = entry / info["file"]
        if not path.exists() or path.stat().st_size != info["bytes"]:
            raise CorruptCacheEntry(f"{path.name} is missing or has the wrong size")
        if sha256_of(path) != info["sha256"]:
            raise CorruptCacheEntry(f"{path.name} fails its sha256 check")
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise CorruptCacheEntry(f"{path.name}: {err}") from err
        if list(array.shape) != info["shape"] or array.dtype != np.float32:
            raise CorruptCacheEntry(f"{path.name} has shape {array.shape}, not {info['shape']}")
        arrays[pooling] = array
    return ActivationSet(
        arrays, tuple(meta["layers"]), meta["n_model_layers"], meta["model_id"], meta
    )


def _write_entry(entry: Path, acts: ActivationSet, meta: dict) -> None:
    with atomic_directory(entry) as tmp:
        files = {}
        for pooling, array in acts.arrays.items():
            name = f"{pooling}.npy"
            np.save(tmp / name, np.ascontiguousarray(array, dtype=np.float32))
            files[pooling] = {
                "file": name,
                "shape": list(array.shape),
                "bytes": (tmp / name).stat().st_size,
                "sha256": sha256_of(tmp / name),
            }
        meta = {**meta, "files": files}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str))


def cached_activations(
    model: str | LoadedModel,
    texts: Sequence[str],
    layers: Sequence[int] | int | None = None,
    poolings: Sequence[str] = ("mean", "last"),
    template: str = DEFAULT_TEMPLATE,
    system_prompt: str | None = None,
    dtype: str = "float32",
    cache_dir: str | Path | None = None,
    random_init: bool = False,
    seed: int = 0,
    device: str = "cpu",
    batch_tokens: int | None = None,
    num_threads: int | str | None = "auto",
    progress: bool = True,
) -> ActivationSet:
    """:func:`extract_activations` behind a content-addressed disk cache (paper-methods §2.1).

    ``model`` is a registry name, hub id, local folder or a :class:`LoadedModel`. Texts are
    deduplicated; the entry ``<cache>/activations/<key>/`` holds one ``<pooling>.npy`` of shape
    (n_layers, n_unique, d) and ``meta.json``. A hit loads in seconds and never loads the model
    (its identity comes from the GGUF/weight-file hashes); a corrupt entry is reported and
    recomputed. The result's rows follow ``texts`` (duplicates allowed); ``meta`` carries model
    id, revision, weights hash, dtype, template, system prompt, timing, cache key and hit/miss.
    """
    started = time.perf_counter()
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("no texts to extract")
    chosen_poolings = _check_poolings(poolings)
    unique = list(dict.fromkeys(texts))
    position = {text: i for i, text in enumerate(unique)}
    index = np.fromiter((position[t] for t in texts), dtype=np.int64, count=len(texts))

    loaded: LoadedModel | None = model if isinstance(model, LoadedModel) else None
    if loaded is not None:
        dtype_name, identity = loaded.dtype, loaded.identity
        random_init, seed = loaded.random_init, loaded.seed or 0
    else:
        dtype_name = normalise_dtype(dtype)
        identity = loading.model_identity(str(model))
        if identity is None:  # weights not on disk yet (hub id): load to identify them
            loaded = _load(model, dtype_name, device, random_init, seed)
            identity = loaded.identity
    chosen_layers = resolve_layers(layers, identity.n_layers)
    key = cache_key(
        identity,
        unique,
        chosen_layers,
        chosen_poolings,
        template,
        system_prompt,
        dtype_name,
        random_init,
        seed,
    )
    entry = activation_cache_dir(cache_dir) / key[:32]

    acts: ActivationSet | None = None
    if entry.exists():
        try:
            acts = _read_entry(entry, key)
        except CorruptCacheEntry as err:
            warnings.warn(
                f"activation cache entry {entry} is corrupt ({err}); recomputing it",
                RuntimeWarning,
                stacklevel=2,
            )
            remove_directory(entry)
    hit = acts is not None
    if acts is None:
        if loaded is None:
            loaded = _load(model, dtype_name, device, random_init, seed)
        fresh = extract_activations(
            loaded,
            unique,
            chosen_layers,
            chosen_poolings,
            template,
            system_prompt,
            batch_tokens=batch_tokens,
            num_threads=num_threads,
            progress=progress,
        )
        meta = {
            **fresh.meta,
            "format": CACHE_FORMAT_VERSION,
            "cache_key": key,
            "layers": list(chosen_layers),
            "n_model_layers": fresh.n_model_layers,
            "n_unique": len(unique),
            "texts_sha256": texts_hash(unique),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "versions": _versions(),
        }
        _write_entry(entry, fresh, meta)
        acts = _read_entry(entry, key)
    result = acts.take(index)
    result.meta.update(
        {
            "cache_hit": hit,
            "cache_key": key,
            "cache_entry": str(entry),
            "n_texts": len(texts),
            "elapsed_s": round(time.perf_counter() - started, 3),
        }
    )
    return result


def _load(model: str, dtype: str, device: str, random_init: bool, seed: int) -> LoadedModel:
    # Looked up on the module so tests can forbid loading by monkeypatching it.
    return loading.load_model(model, dtype=dtype, device=device, random_init=random_init, seed=seed)


def _versions() -> dict[str, str]:
    import transformers

    import moralkit

    return {
        "moralkit": moralkit.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
