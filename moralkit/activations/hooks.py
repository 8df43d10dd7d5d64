"""Forward hooks that pool the residual stream after decoder blocks, and the forward pass.

Hooks sit on the decoder blocks themselves and only the text decoder runs: no LM head, no
logits (Gemma-3's head alone is 168M parameters), no KV cache; the forward stops right after
the deepest requested block (its hook raises :class:`StopForward`). Each block's output is
pooled two ways: the mean over real tokens (BOS included) and the last real token (paper §2.1;
book: Methods › Activations, methods/activations.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from moralkit.activations.batching import BatchLayout, packed_layout, padded_layout
from moralkit.models.decoder import DecoderParts, find_decoder, input_device
from moralkit.models.loading import LoadedModel


class StopForward(Exception):
    """Raised by the deepest requested layer's hook: nothing after it needs to run."""


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
class Capture:
    """What the hooks write into: preallocated (n_layers, n_texts, d) arrays per pooling."""

    arrays: dict[str, np.ndarray]
    layer_pos: dict[int, int]
    deepest: int
    layout: BatchLayout | None = None
    calls: dict[int, int] = field(default_factory=dict)


@contextmanager
def capture_layers(parts: DecoderParts, capture: Capture) -> Iterator[None]:
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
                raise StopForward  # nothing after this layer is needed

        return hook

    handles = [parts.layers[i].register_forward_hook(make_hook(i)) for i in capture.layer_pos]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_forward(parts: DecoderParts, layout: BatchLayout) -> None:
    try:
        parts.text_model(
            input_ids=layout.input_ids,
            attention_mask=layout.attention_mask,
            position_ids=layout.position_ids,
            use_cache=False,
        )
    except StopForward:
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
    device = input_device(parts)
    results = []
    for layout in (
        packed_layout(pair, [[0, 1]], pad_id),
        padded_layout(pair, np.arange(2), pad_id, "right"),
    ):
        capture = Capture(
            arrays={"mean": np.zeros((1, 2, loaded.hidden_size), np.float32)},
            layer_pos={0: 0},
            deepest=0,
        )
        capture.layout = layout.to(device)
        with torch.inference_mode(), capture_layers(parts, capture):
            run_forward(parts, capture.layout)
        results.append(capture.arrays["mean"][0])
    scale = max(1.0, float(np.abs(results[1]).max()))
    ok = bool(np.abs(results[0] - results[1]).max() <= 1e-4 * scale)
    loaded._packing_ok = ok  # type: ignore[attr-defined]
    return ok
