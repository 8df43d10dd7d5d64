"""Re-initialising dead latents during pretraining: a departure from the paper's recipe that
the quick preset needs (paper §4.2; book: Methods › SAE surgery, methods/sae.md).

With a few thousand steps on a few thousand vectors, λ set high enough to reach the target L0
kills latents early, and a dead latent gets no gradient to come back: on SmolLM2-135M's layer 8,
16% of 2,304 latents died without resampling. Every ``resample_every`` steps, each latent that
did not fire during those steps is given a new direction, as in Bricken et al. (2023): a
training input drawn with probability proportional to its squared reconstruction error, made
unit-norm for the decoder row and scaled to 0.2 x the mean norm of the live encoder columns for
the encoder; its encoder bias is set to 0 and its optimiser state cleared. The paper's code
never resamples; the paper presets keep ``resample_every = 0``.
"""

from __future__ import annotations

import torch

__all__ = ["resample_dead"]


def _clear_adam_state(opt: torch.optim.Optimizer, sae, dead: torch.Tensor) -> None:
    slices = {id(sae.W_enc): (slice(None), dead), id(sae.b_enc): (dead,), id(sae.W_dec): (dead,)}
    for group in opt.param_groups:
        for p in group["params"]:
            state = opt.state.get(p)
            if not state or id(p) not in slices:
                continue
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][slices[id(p)]] = 0.0


@torch.no_grad()
def resample_dead(
    sae,
    opt: torch.optim.Optimizer,
    fired: torch.Tensor,
    x: torch.Tensor,
    gen: torch.Generator,
    sample: int = 4096,
) -> int:
    """Re-initialise the latents with ``fired == False`` from ``sample`` rows of the centred
    training inputs ``x`` (see the module docstring); returns how many were resampled."""
    dead = torch.nonzero(~fired).flatten()
    if dead.numel() == 0:
        return 0
    rows = x[torch.randperm(len(x), generator=gen)[:sample].to(x.device)]
    err = ((sae.decode(sae.encode(rows)) - rows) ** 2).sum(dim=1)
    if float(err.sum()) <= 0:
        return 0
    pick = torch.multinomial(err / err.sum(), dead.numel(), replacement=True, generator=gen)
    chosen = rows[pick]
    unit = chosen / chosen.norm(dim=1, keepdim=True).clamp_min(1e-8)
    alive = fired.clone()
    enc_norm = sae.W_enc[:, alive].norm(dim=0).mean() if alive.any() else torch.tensor(1.0)
    sae.W_dec.data[dead] = unit
    sae.W_enc.data[:, dead] = (unit * 0.2 * enc_norm).T
    sae.b_enc.data[dead] = 0.0
    _clear_adam_state(opt, sae, dead)
    return int(dead.numel())
