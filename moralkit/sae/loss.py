"""The SAE pretraining loss: the paper's formula, sae-lens' conversion of it, and one fused
float32 step (paper §4.2; book: Methods › SAE surgery, methods/sae.md).

The paper's loss is ``mean((x̂ - x)²) + λ·mean(|z|)`` (means over batch *and* features), with
``z = ReLU(W_e x + b_e)`` and ``x̂ = W_d z + b_d`` on centred inputs. Three ways to compute it,
which ``tests/test_sae_train.py`` checks give the same loss and the same clipped update:

- :func:`paper_formula_loss`, the formula written out (reference and tests);
- :func:`paper_loss`, through sae-lens' ``training_forward_pass`` with the documented scale
  conversion (used under the official loop's fp16 autocast, where sae-lens' casts apply);
- :func:`fused_paper_loss`, one autograd function whose backward is the five matmuls a step
  needs plus three element-wise passes over the codes (used in float32, which is every preset
  on a CPU). Autograd's graph for the same loss runs about a dozen element-wise passes over
  the (batch x d_sae) codes; at the paper's batch of 4,096 on a CPU these are memory-bound and
  cost a tenth of a step.
"""

from __future__ import annotations

import torch

__all__ = ["fused_paper_loss", "paper_formula_loss", "paper_loss"]


def _step_input(x: torch.Tensor):
    from sae_lens.saes.sae import TrainStepInput

    return TrainStepInput(
        sae_in=x,
        coefficients={"l1": 0.0},
        dead_neuron_mask=None,
        n_training_steps=0,
        is_logging_step=False,
    )


def paper_loss(sae, x: torch.Tensor, l1: float) -> tuple[torch.Tensor, dict]:
    """The paper's loss computed through sae-lens' forward pass with the documented conversion.

    sae-lens sums its squared error over the ``d_in`` inputs and its L1 over the ``d_sae``
    features, then averages over the batch, so ``paper loss = (sae-lens MSE + (λ·d_in/d_sae)·
    sae-lens L1) / d_in``. Returns ``(loss, parts)`` where ``parts`` holds the paper-scale
    ``mse``, ``l1`` (mean|z|), the codes ``z`` and ``column_sums`` (each latent's codes
    summed over the batch: positive where it fired).
    """
    out = sae.training_forward_pass(_step_input(x))
    d_in, d_sae = sae.cfg.d_in, sae.cfg.d_sae
    # sae-lens' L1 (p = 1; ReLU codes are >= 0) without its decoder-norm weights: the paper's
    # penalty has none, and renormalisation keeps them at 1 (a pass over the decoder per step)
    l1_sum = out.feature_acts.sum(dim=-1).mean()
    coeff = l1 * d_in / d_sae
    loss = (out.losses["mse_loss"] + coeff * l1_sum) / d_in
    parts = {
        "mse": out.losses["mse_loss"].detach() / d_in,
        "l1": l1_sum.detach() / d_sae,
        "z": out.feature_acts,
        "column_sums": out.feature_acts.detach().sum(0),
    }
    return loss, parts


def paper_formula_loss(sae, x: torch.Tensor, l1: float) -> torch.Tensor:
    """The paper's loss written directly: mean-MSE + λ·mean|z| (for tests and reference)."""
    z = torch.relu(x @ sae.W_enc + sae.b_enc)
    x_hat = z @ sae.W_dec + sae.b_dec
    return torch.nn.functional.mse_loss(x_hat, x) + l1 * z.abs().mean()


class _FusedLoss(torch.autograd.Function):
    """Forward and backward of the paper's loss by hand, in place where autograd allocates."""

    @staticmethod
    def forward(ctx, x, w_enc, b_enc, w_dec, b_dec, l1: float):
        z = torch.addmm(b_enc, x, w_enc).relu_()
        err = torch.addmm(b_dec, z, w_dec).sub_(x)
        flat = err.view(-1)
        mse = torch.dot(flat, flat) / err.numel()
        # per-latent sums: the L1 term, and (codes >= 0) which latents fired, in one pass
        column_sums = z.sum(0)
        l1_term = column_sums.sum() / z.numel()
        ctx.save_for_backward(x, w_dec, z, err)
        ctx.l1 = l1
        mse, l1_term = mse.detach(), l1_term.detach()
        ctx.mark_non_differentiable(mse, l1_term, z, column_sums)
        return mse + l1 * l1_term, mse, l1_term, z, column_sums

    @staticmethod
    def backward(ctx, grad, _mse, _l1, _z, _sums):
        x, w_dec, z, err = ctx.saved_tensors
        g = err * (2 * grad / err.numel())
        grad_w_dec, grad_b_dec = z.T @ g, g.sum(0)
        # d/dz of λ·mean(z) is a constant; ReLU passes gradient only where the code is positive
        # (|z| = z there, and at z = 0 both the formula and autograd give zero)
        gz = (g @ w_dec.T).add_(grad * ctx.l1 / z.numel())
        gz = torch.ops.aten.threshold_backward(gz, z, 0)
        return None, x.T @ gz, gz.sum(0), grad_w_dec, grad_b_dec, None


def fused_paper_loss(sae, x: torch.Tensor, l1: float) -> tuple[torch.Tensor, dict]:
    """The paper's loss on sae-lens' parameters in one autograd function (float32 steps).

    Same contract as :func:`paper_loss`; the SAE must read centred inputs with no activation
    normalisation, as :func:`moralkit.sae.train.new_training_sae` builds it.
    """
    cfg = sae.cfg
    if cfg.apply_b_dec_to_input or getattr(cfg, "normalize_activations", "none") != "none":
        raise ValueError("fused_paper_loss needs an SAE on centred, unnormalised inputs")
    loss, mse, l1_term, z, sums = _FusedLoss.apply(
        x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec, l1
    )
    return loss, {"mse": mse, "l1": l1_term, "z": z, "column_sums": sums}
