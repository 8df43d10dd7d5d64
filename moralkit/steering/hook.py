"""Inference-time steering: replace one decoder layer's output by an SAE reconstruction.

(paper §4.5; book: Methods › Steering, methods/steering.md.) A forward hook on decoder layer ℓ
rewrites the layer output at every token position and at every generation step as

    h ← h + s · (SAE(h − c) + c − h)

where ``c`` is the centre the SAE was trained around and ``s`` the strength: ``s = 1`` replaces
the residual stream by the reconstruction, ``s = 0`` leaves it unchanged. The SAE is any
sae-lens SAE (``encode``/``decode``); the model's weights are never touched, and
:func:`steer` removes its hook when the block ends, also on exceptions.

The **error-preserving** arm (stage ``"delta"``, an addition to the paper) keeps the residual
stream and adds only what fine-tuning changed:

    h ← h + s · (SAE_ft(h − c) − SAE_pre(h − c))

(``base`` is the pretrained SAE). The reconstruction error of either SAE never enters, so the
arm cannot damage the model by reconstruction loss; the two SAEs differ only in the fine-tuned
features, so the added vector lies in their decoder rows.

``features`` restricts the reconstruction to a set of latents (the others are zeroed before
decoding, the decoder bias kept): the paper's code steers with all latents by default
(``use_all_features=True``); restricting to the fine-tuned moral features is our reading of its
other option.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from moralkit.models.decoder import find_decoder

if TYPE_CHECKING:
    from sae_lens import SAE
    from transformers import PreTrainedModel

#: steering arms: no hook, the pretrained SAE (control), the fine-tuned SAE (paper §4.5, §9.7)
#: and the error-preserving arm, fine-tuned minus pretrained added to h (an addition)
STEERING_STAGES = ("none", "pretrained", "finetuned", "delta")
#: which latents take part in the reconstruction
FEATURE_SETS = ("all", "selected")


@dataclass(frozen=True)
class SteeringConfig:
    """One steering arm: which SAE by its ``stage`` (``pretrained`` or ``finetuned``; ``none``: no
    steering), where (``layer``), how hard and with which latents.

    ``layer`` is a decoder-layer index (negative counts from the end); it is ignored when
    ``stage == "none"``. ``strength`` 1.0 is the paper's default (replacement).
    """

    stage: str = "finetuned"
    layer: int = 0
    strength: float = 1.0
    features: str = "all"

    def __post_init__(self) -> None:
        if self.stage not in STEERING_STAGES:
            raise ValueError(
                f"SteeringConfig.stage={self.stage!r}; expected one of {STEERING_STAGES}"
            )
        if self.features not in FEATURE_SETS:
            raise ValueError(
                f"SteeringConfig.features={self.features!r}; expected one of {FEATURE_SETS}"
            )

    @property
    def label(self) -> str:
        """A short name for tables and cache keys, e.g. ``finetuned@11 s=1``."""
        if self.stage == "none":
            return "none"
        extra = "" if self.features == "all" else " selected"
        return f"{self.stage}@{self.layer} s={self.strength:g}{extra}"


def steering_arms(
    layers: Sequence[int],
    strengths: Sequence[float],
    stages: Sequence[str] = ("pretrained", "finetuned", "delta"),
    features: str = "all",
) -> list[SteeringConfig]:
    """The unsteered arm plus every (stage, layer, strength) combination."""
    arms = [SteeringConfig(stage="none")]
    for stage in stages:
        for layer in layers:
            arms += [SteeringConfig(stage, int(layer), float(s), features) for s in strengths]
    return arms


@dataclass(frozen=True)
class SteeringSAE:
    """An SAE ready for steering: the sae-lens object, its centre, its selected latents and,
    for the error-preserving arm, the pretrained SAE whose reconstruction it subtracts."""

    sae: SAE
    centre: torch.Tensor
    selected: tuple[int, ...] | None = None
    base: SAE | None = None


class SteeringHook:
    """The forward hook that rewrites a decoder layer's output (see module doc).

    ``calls`` counts the forward passes it rewrote and ``positions`` the token positions, so a
    test (or a reader) can check that every generation step went through it.
    """

    def __init__(
        self,
        sae: SAE,
        centre: torch.Tensor,
        strength: float,
        features: Sequence[int] | None = None,
        base: SAE | None = None,
    ) -> None:
        self.sae = sae
        self.base = base
        if base is not None and (base.cfg.d_in, base.cfg.d_sae) != (sae.cfg.d_in, sae.cfg.d_sae):
            raise ValueError("the base SAE must have the steered SAE's d_in and d_sae")
        self.strength = float(strength)
        param = next(sae.parameters())
        self._dtype, self._device = param.dtype, param.device
        self.centre = torch.as_tensor(centre, dtype=self._dtype, device=self._device).reshape(-1)
        d_in = int(sae.cfg.d_in)
        if self.centre.numel() != d_in:
            raise ValueError(f"centre has {self.centre.numel()} values; the SAE's d_in is {d_in}")
        self.mask = _feature_mask(features, int(sae.cfg.d_sae), self._dtype, self._device)
        self.calls = 0
        self.positions = 0

    def _decoded(self, sae: SAE, x: torch.Tensor) -> torch.Tensor:
        codes = sae.encode(x)
        if self.mask is not None:
            codes = codes * self.mask
        return sae.decode(codes)

    def rewrite(self, hidden: torch.Tensor) -> torch.Tensor:
        """``h + s·(SAE(h − c) + c − h)``, or with a ``base`` SAE
        ``h + s·(SAE(h − c) − base(h − c))``, computed in the SAE's dtype, returned in
        ``hidden``'s."""
        if self.strength == 0.0:
            return hidden  # exactly unchanged, not merely close
        h = hidden.to(device=self._device, dtype=self._dtype)
        with torch.no_grad():
            x = h - self.centre
            if self.base is None:
                change = self._decoded(self.sae, x) + self.centre - h
            else:
                change = self._decoded(self.sae, x) - self._decoded(self.base, x)
        steered = h + self.strength * change
        return steered.to(device=hidden.device, dtype=hidden.dtype)

    def __call__(self, module: torch.nn.Module, args: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output
        self.calls += 1
        self.positions += int(hidden.shape[-2]) if hidden.dim() >= 2 else 1
        steered = self.rewrite(hidden)
        if isinstance(output, tuple):
            return (steered, *output[1:])
        return steered


def _feature_mask(
    features: Sequence[int] | None, d_sae: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor | None:
    if features is None:
        return None
    ids = torch.as_tensor(list(features), dtype=torch.long)
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= d_sae):
        raise ValueError(f"features must lie in [0, {d_sae}); got ids up to {int(ids.max())}")
    mask = torch.zeros(d_sae, dtype=dtype, device=device)
    mask[ids.to(device)] = 1
    return mask


def decoder_layer(model: PreTrainedModel, layer: int) -> torch.nn.Module:
    """The decoder block at index ``layer`` (negative from the end); error names the depth."""
    layers = find_decoder(model).layers
    n = len(layers)
    if not -n <= int(layer) < n:
        raise ValueError(f"layer={layer} is outside the model's {n} decoder layers")
    return layers[int(layer)]


@contextmanager
def steer(
    model: PreTrainedModel,
    layer: int,
    sae: SAE | None,
    centre: torch.Tensor | None = None,
    strength: float = 1.0,
    features: Sequence[int] | None = None,
    base: SAE | None = None,
) -> Iterator[SteeringHook | None]:
    """Steer ``model`` at decoder ``layer`` with ``sae`` inside the ``with`` block.

    ``sae=None`` is the unsteered arm (nothing is hooked; yields None). ``features`` restricts
    the reconstruction to those latents; ``base`` makes the arm error-preserving (module doc).
    The hook is removed when the block exits, whether it finishes or raises. Works for plain
    forward passes and for ``generate`` (every step).
    """
    if sae is None:
        yield None
        return
    if centre is None:
        raise ValueError("steer(): centre is required when an SAE is given")
    hook = SteeringHook(sae, centre, strength, features, base)
    # prepend: transformers 5 records output_hidden_states with a hook of its own on each
    # layer; running first makes the recorded hidden state the steered one.
    handle = decoder_layer(model, layer).register_forward_hook(hook, prepend=True)
    try:
        yield hook
    finally:
        handle.remove()


@contextmanager
def steering(
    model: PreTrainedModel,
    config: SteeringConfig,
    saes: dict[str, SteeringSAE] | None = None,
) -> Iterator[SteeringHook | None]:
    """:func:`steer` for one :class:`SteeringConfig`; ``saes`` maps a stage to its SAE."""
    if config.stage == "none":
        with steer(model, config.layer, None) as hook:
            yield hook
        return
    if not saes or config.stage not in saes:
        raise ValueError(f"steering stage {config.stage!r} needs saes[{config.stage!r}]")
    bundle = saes[config.stage]
    features = None
    if config.features == "selected":
        if bundle.selected is None:
            raise ValueError(f"features='selected' but the {config.stage} SAE has no selection")
        features = bundle.selected
    if config.stage == "delta" and bundle.base is None:
        raise ValueError("steering stage 'delta' needs the pretrained SAE as the bundle's base")
    with steer(
        model, config.layer, bundle.sae, bundle.centre, config.strength, features, bundle.base
    ) as hook:
        yield hook


def active_hook_count(model: PreTrainedModel) -> int:
    """Steering hooks currently registered on the decoder layers (0 outside a block).

    transformers registers hooks of its own on decoder layers; only :class:`SteeringHook`
    instances are counted.
    """
    return sum(
        isinstance(hook, SteeringHook)
        for layer in find_decoder(model).layers
        for hook in layer._forward_hooks.values()
    )
