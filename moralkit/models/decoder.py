"""Find the text decoder and its layer stack inside a transformers causal LM.

(paper §2.1; book: Methods › Activations, methods/activations.md.)

The paper hooks ``model.model.layers[i]``: the residual stream after decoder block ``i``. Model
classes name that stack differently (``model.layers``, ``model.language_model.layers`` for
multimodal checkpoints such as Llama-4), so we look for the ``nn.ModuleList`` whose length is
the configured depth and call its owner directly: that runs embeddings and blocks but never
the LM head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class DecoderParts:
    """The module that owns the decoder blocks (call it to run the stack) and the blocks."""

    text_model: nn.Module
    layers: nn.ModuleList
    path: str  # dotted name of ``layers`` inside the full model, e.g. "model.layers"


def configured_depth(model: PreTrainedModel) -> int:
    """``num_hidden_layers`` of the (text) config."""
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text_config.num_hidden_layers)


def find_decoder(model: PreTrainedModel) -> DecoderParts:
    """The decoder stack of ``model``; ValueError if none matches the configured depth."""
    depth = configured_depth(model)
    candidates = []
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth and name.endswith("layers"):
            candidates.append(name)
    if not candidates:
        raise ValueError(
            f"cannot find the {depth} decoder layers of {type(model).__name__}: no ModuleList "
            "named '*layers' with that length"
        )
    # The shortest path is the text decoder's own stack (vision towers nest deeper).
    path = min(candidates, key=lambda n: (n.count("."), n))
    owner_path, _, attr = path.rpartition(".")
    owner = model.get_submodule(owner_path) if owner_path else model
    return DecoderParts(text_model=owner, layers=getattr(owner, attr), path=path)


def input_device(parts: DecoderParts) -> torch.device:
    """The device of the decoder's first parameter (where input ids must go)."""
    for param in parts.text_model.parameters():
        return param.device
    return torch.device("cpu")
