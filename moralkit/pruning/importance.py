"""Per-weight importance scores of every linear layer in the decoder blocks, cached as top-k.

(paper §7(b); book: Methods › Harmful weights, methods/harmful-weights.md.) Three methods:

- ``"snip"`` (Wei et al.'s ``wandg``): ``|W| * sum_i |dL_i/dW|``, the gradient magnitude summed
  over calibration examples ``i`` (one backward pass per example, as Wei et al. do). For a single
  example this is ``|W * dL/dW|``.
- ``"signed_snip"`` (our reading of Orgad et al.'s signed SNIP): ``-(W * sum_i dL_i/dW)``, the
  first-order *rise* of the calibration loss when the weight is zeroed. The largest scores are
  the weights that most support the calibration text; weights whose removal would make it more
  likely score below zero and are never selected first.
- ``"wanda"``: ``|W| * ||X_c||_2``, the input norm of each column over the response tokens.

``L_i`` is the mean cross-entropy of example ``i``'s response tokens (prompt tokens masked, see
:mod:`moralkit.pruning.calibration`). Scores are ranked per whole matrix (``scope="matrix"``:
Wei et al.'s set-difference code, and the only scope that reaches the 0.0005% scale) or within
each output row (``scope="row"``: Wei et al.'s single-set pruning). Only the indices of the top
``keep`` fraction are stored, never a dense copy; entries are written atomically.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from moralkit.io import atomic_path
from moralkit.models.decoder import find_decoder
from moralkit.models.scoring import decoder_forward, lm_head_logits, pad_id, pad_rows
from moralkit.paths import cache_root
from moralkit.pruning.calibration import IGNORE_INDEX, CalibrationSet, encode_example
from moralkit.pruning.ranking import top_indices

if TYPE_CHECKING:
    from moralkit.models import LoadedModel

METHODS = ("snip", "signed_snip", "wanda")
SCOPES = ("matrix", "row")
INDEX_VERSION = 1  # bump when scores or storage change


@dataclass(frozen=True)
class ImportanceConfig:
    """How scores are computed and how much of each ranking is kept.

    ``keep`` is the largest fraction later selections may ask for (a top-q or top-p); the
    cache serves any request up to it. ``max_tokens`` cuts long examples.
    """

    method: str = "snip"
    scope: str = "matrix"
    keep: float = 0.1
    max_tokens: int = 256

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}; expected one of {METHODS}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope={self.scope!r}; expected one of {SCOPES}")
        if not 0 < self.keep <= 1:
            raise ValueError(f"keep={self.keep} must be in (0, 1]")


@dataclass
class ImportanceIndex:
    """The top-``keep`` indices of one score per linear layer, best first.

    ``top[name]`` has shape ``(groups, k)``: one group per output row (``scope="row"``, column
    indices) or one group for the whole matrix (flat indices ``row * n_cols + col``).
    """

    top: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, int]]
    scope: str
    keep: float
    meta: dict = field(default_factory=dict)
    # selections are asked for again and again (every mask of a compactness curve): memoised
    _selected: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _members: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def layer_names(self) -> list[str]:
        return list(self.shapes)

    def n_weights(self) -> int:
        return int(sum(r * c for r, c in self.shapes.values()))

    def select(self, fraction: float) -> dict[str, np.ndarray]:
        """Flat indices of the top ``fraction`` per layer (Wei et al.: ``int(fraction * n)``)."""
        if fraction in self._selected:
            return self._selected[fraction]
        if fraction > self.keep + 1e-12:
            raise ValueError(
                f"fraction={fraction} exceeds the stored keep={self.keep}; recompute the "
                "scores with ImportanceConfig(keep=...) at least that large"
            )
        out = {}
        for name, (rows, cols) in self.shapes.items():
            size = cols if self.scope == "row" else rows * cols
            k = int(fraction * size)
            chosen = self.top[name][:, :k].astype(np.int64)
            if self.scope == "row":
                chosen = chosen + (np.arange(rows, dtype=np.int64) * cols)[:, None]
            out[name] = np.sort(chosen.ravel())
        self._selected[fraction] = out
        return out

    def membership(self, fraction: float) -> dict[str, np.ndarray]:
        """Per layer, a boolean array over its flat weights: True for the top ``fraction``."""
        if fraction not in self._members:
            members = {}
            for name, idx in self.select(fraction).items():
                rows, cols = self.shapes[name]
                flags = np.zeros(rows * cols, dtype=bool)
                flags[idx] = True
                members[name] = flags
            self._members[fraction] = members
        return self._members[fraction]


def linear_layers(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` inside the decoder blocks, by name inside the full model."""
    parts = find_decoder(model)
    found = {}
    for i, block in enumerate(parts.layers):
        for name, module in block.named_modules():
            if isinstance(module, nn.Linear):
                found[f"{parts.path}.{i}.{name}"] = module
    if not found:
        raise ValueError(f"{type(model).__name__} has no nn.Linear inside its decoder blocks")
    return found


@contextmanager
def _grads_on(weights: list[nn.Parameter], model: nn.Module) -> Iterator[None]:
    """Gradients for ``weights`` only; every flag and grad restored afterwards."""
    flags = {p: p.requires_grad for p in model.parameters()}
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        for w in weights:
            w.requires_grad_(True)
            w.grad = None
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None


def _examples(loaded: LoadedModel, calib: CalibrationSet, max_tokens: int):
    for prompt, response in zip(calib.prompts, calib.responses, strict=True):
        yield encode_example(loaded.tokenizer, prompt, response, max_tokens)


def response_loss(loaded: LoadedModel, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the labelled (response) tokens of one sequence.

    Equal to the model's own ``labels=`` loss, but the LM head runs only at the scored
    positions: for a 262k vocabulary (Gemma 3) the head costs more than the blocks.
    """
    hidden = decoder_forward(loaded, ids, None).last_hidden_state[0]
    targets = labels[0, 1:].to(hidden.device)
    scored = targets != IGNORE_INDEX
    logits = lm_head_logits(loaded, hidden[:-1][scored])
    return nn.functional.cross_entropy(logits, targets[scored])


#: a callback seeing one example's gradients: (example index, layer name -> gradient)
ExampleHook = Callable[[int, Mapping[str, torch.Tensor]], None]
#: examples per padded batch when a sum of gradients can come from one backward pass
SIGNED_BATCH = 8


def batch_response_loss(loaded: LoadedModel, examples: list) -> torch.Tensor:
    """Sum over ``examples`` (``(ids, labels)`` pairs) of each one's :func:`response_loss`,
    from one right-padded forward pass (causal attention: padding after a sequence never
    reaches its tokens)."""
    ids, mask = pad_rows([x[0].tolist() for x, _ in examples], pad_id(loaded))
    labels, _ = pad_rows([y[0].tolist() for _, y in examples], IGNORE_INDEX)
    hidden = decoder_forward(loaded, ids, mask).last_hidden_state
    targets = labels[:, 1:].to(hidden.device)
    scored = targets != IGNORE_INDEX
    logits = lm_head_logits(loaded, hidden[:, :-1][scored])
    nll = nn.functional.cross_entropy(logits, targets[scored], reduction="none")
    rows = torch.arange(len(examples), device=hidden.device)[:, None].expand_as(targets)[scored]
    per_example = torch.zeros(len(examples), device=hidden.device).index_add(0, rows, nll)
    return (per_example / scored.sum(dim=1)).sum()


def gradient_scores(
    loaded: LoadedModel, calib: CalibrationSet, signed: bool, max_tokens: int, progress: bool
) -> dict[str, torch.Tensor]:
    """Dense SNIP (``signed=False``) or signed-SNIP scores of every block linear layer."""
    parts = {"all": range(len(calib))}
    return gradient_scores_parts(loaded, calib, parts, signed, max_tokens, progress)["all"]


def gradient_scores_parts(
    loaded: LoadedModel,
    calib: CalibrationSet,
    parts: Mapping[str, Sequence[int]],
    signed: bool,
    max_tokens: int,
    progress: bool,
    on_example: ExampleHook | None = None,
) -> dict[str, dict[str, torch.Tensor]]:
    """Dense scores of several subsets of ``calib`` (``parts``: name -> example indices) from
    one backward pass per example: the scores are sums over examples, so each example's
    gradient is added to every part holding it (in example order, as a single-set run does).

    ``on_example(i, grads)`` sees each example's own gradients (layer name -> tensor) before
    they are summed (e.g. :class:`moralkit.pruning.unity.CandidateSink`)."""
    layers = linear_layers(loaded.model)
    weights = [m.weight for m in layers.values()]
    members = {name: set(map(int, rows)) for name, rows in parts.items()}
    sums = {
        part: {n: torch.zeros_like(m.weight, dtype=torch.float32) for n, m in layers.items()}
        for part in parts
    }
    device = weights[0].device
    if signed and len(parts) == 1 and on_example is None:  # sum of gradients = gradient of sum
        return {
            part: _summed_gradient_scores(loaded, calib, rows, max_tokens, progress, sums[part])
            for part, rows in parts.items()
        }
    with _grads_on(weights, loaded.model):
        bar = tqdm(
            list(enumerate(_examples(loaded, calib, max_tokens))),
            desc=f"{calib.name}: scores",
            disable=not progress,
        )
        for i, (ids, labels) in bar:
            holders = [part for part, rows in members.items() if i in rows]
            if not holders:
                continue
            response_loss(loaded, ids.to(device), labels.to(device)).backward()
            if on_example is not None:
                on_example(i, {name: module.weight.grad for name, module in layers.items()})
            for name, module in layers.items():
                grad = module.weight.grad.float()
                grad = grad if signed else grad.abs_()
                for part in holders:
                    sums[part][name].add_(grad)
                module.weight.grad = None
    with torch.no_grad():
        for dense in sums.values():
            for name, module in layers.items():
                w = module.weight.float()
                dense[name] = -(w * dense[name]) if signed else w.abs() * dense[name]
    return sums


def _summed_gradient_scores(
    loaded: LoadedModel,
    calib: CalibrationSet,
    rows: Sequence[int],
    max_tokens: int,
    progress: bool,
    sums: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Signed SNIP of the examples ``rows`` from padded batches, one backward pass each."""
    layers = linear_layers(loaded.model)
    examples = list(_examples(loaded, calib.subset(calib.name, list(rows)), max_tokens))
    starts = range(0, len(examples), SIGNED_BATCH)
    with _grads_on([m.weight for m in layers.values()], loaded.model):
        for start in tqdm(starts, desc=f"{calib.name}: scores", disable=not progress):
            batch_response_loss(loaded, examples[start : start + SIGNED_BATCH]).backward()
            for name, module in layers.items():
                sums[name].add_(module.weight.grad.float())
                module.weight.grad = None
    with torch.no_grad():
        return {n: -(m.weight.float() * sums[n]) for n, m in layers.items()}


def wanda_scores(
    loaded: LoadedModel, calib: CalibrationSet, max_tokens: int, progress: bool
) -> dict[str, torch.Tensor]:
    """Dense Wanda scores ``|W| * ||X_c||_2`` over the response tokens of ``calib``."""
    layers = linear_layers(loaded.model)
    squares = {n: torch.zeros(m.in_features) for n, m in layers.items()}
    current: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(_module, inputs, _output):
            x = inputs[0][0][current["mask"]].float()  # response positions of the one example
            squares[name] += (x * x).sum(dim=0).cpu()

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in layers.items()]
    device = next(iter(layers.values())).weight.device
    try:
        examples = list(_examples(loaded, calib, max_tokens))
        for ids, labels in tqdm(examples, desc=f"{calib.name}: wanda", disable=not progress):
            current["mask"] = (labels[0] != IGNORE_INDEX).to(device)
            with torch.inference_mode():
                loaded.model(input_ids=ids.to(device))
    finally:
        for handle in handles:
            handle.remove()
    return {
        n: m.weight.detach().float().abs().cpu() * squares[n].sqrt()[None, :]
        for n, m in layers.items()
    }


def cache_file(
    loaded: LoadedModel, calib: CalibrationSet, config: ImportanceConfig, cache_dir: Path
) -> Path:
    payload = json.dumps(
        {
            "model": loaded.name,
            "weights": loaded.weights_hash,
            "random_init": loaded.random_init,
            "seed": loaded.seed,
            "dtype": loaded.dtype,
            "calibration": calib.content_hash,
            "config": asdict(config),
            "version": INDEX_VERSION,
        },
        sort_keys=True,
    )
    key = hashlib.sha256(payload.encode()).hexdigest()[:20]
    return cache_dir / f"{loaded.name.replace('/', '--')}-{calib.name}-{config.method}-{key}.npz"


def save_index(index: ImportanceIndex, path: Path) -> None:
    """Write ``index`` atomically as one ``.npz`` (arrays ``top_<i>`` + JSON header)."""
    header = {
        "shapes": index.shapes,
        "scope": index.scope,
        "keep": index.keep,
        "meta": index.meta,
        "names": index.layer_names,
    }
    arrays = {f"top_{i}": index.top[n] for i, n in enumerate(index.layer_names)}
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, header=np.array(json.dumps(header)), **arrays)


def load_index(path: Path) -> ImportanceIndex:
    """Read an index written by :func:`save_index`."""
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        top = {n: data[f"top_{i}"] for i, n in enumerate(header["names"])}
    shapes = {n: tuple(s) for n, s in header["shapes"].items()}
    return ImportanceIndex(top, shapes, header["scope"], header["keep"], header["meta"])


def importance_index(
    loaded: LoadedModel,
    calib: CalibrationSet,
    config: ImportanceConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> ImportanceIndex:
    """Scores of ``calib`` on ``loaded`` reduced to per-layer top-k indices, cached on disk.

    The cache key covers the model's weights hash, the calibration pairs and ``config``; call
    this before any pruning context (the weights must be the model's own). ``cache_dir``
    defaults to ``$MORALKIT_CACHE/pruning``.
    """
    parts = {calib.name: range(len(calib))}
    return importance_indices(loaded, calib, parts, config, cache_dir, progress)[calib.name]


def importance_indices(
    loaded: LoadedModel,
    calib: CalibrationSet,
    parts: Mapping[str, Sequence[int]],
    config: ImportanceConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    on_example: ExampleHook | None = None,
) -> dict[str, ImportanceIndex]:
    """:func:`importance_index` of each subset ``calib.subset(name, rows)`` in ``parts``, with
    one backward pass per example for all of them (SNIP scores are sums over examples).

    Each part is cached under the same key as a single-set call on that subset; only the parts
    missing from the cache are computed, unless ``on_example`` is given (see
    :func:`gradient_scores_parts`): then every example's backward pass runs.
    """
    config = config or ImportanceConfig()
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "pruning"
    subsets = {name: calib.subset(name, list(rows)) for name, rows in parts.items()}
    paths = {name: cache_file(loaded, sub, config, folder) for name, sub in subsets.items()}
    out = {}
    for name, path in paths.items():
        if path.exists():
            out[name] = load_index(path)
            out[name].meta["cache"] = "hit"
    missing = {name: parts[name] for name in parts if name not in out or on_example}
    if not missing:
        return out
    if config.method == "wanda":
        if on_example is not None:
            raise ValueError("on_example needs gradient scores (snip or signed_snip), not wanda")
        dense = {
            name: wanda_scores(loaded, subsets[name], config.max_tokens, progress)
            for name in missing
        }
    else:
        signed = config.method == "signed_snip"
        dense = gradient_scores_parts(
            loaded, calib, missing, signed, config.max_tokens, progress, on_example
        )
    for name in missing:
        scores = dense.pop(name)  # freed part by part: dense copies are model-sized
        top = {n: top_indices(s, config.scope, config.keep) for n, s in scores.items()}
        shapes = {n: tuple(int(x) for x in s.shape) for n, s in scores.items()}
        meta = {
            "model": loaded.name,
            "calibration": name,
            "n_examples": len(subsets[name]),
            "method": config.method,
            "file": paths[name].name,
        }
        index = ImportanceIndex(top, shapes, config.scope, config.keep, meta)
        save_index(index, paths[name])
        index.meta["cache"] = "miss"
        out[name] = index
    return {name: out[name] for name in parts}
