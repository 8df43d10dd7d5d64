"""The SAE pretraining loss: the paper's formula, sae-lens' conversion of it, and one fused
float32 step with its gradients by hand (paper §4.2; book: Methods › SAE surgery, methods/sae.md).

The paper's loss is ``mean((x̂ - x)²) + λ·mean(|z|)`` (means over batch *and* features), with
``z = ReLU(W_e x + b_e)`` and ``x̂ = W_d z + b_d`` on centred inputs. Three ways to compute it,
which ``tests/test_sae_train.py`` checks give the same loss and the same clipped update:

- :func:`paper_formula_loss`, the formula written out (reference and tests);
- :func:`paper_loss`, through sae-lens' ``training_forward_pass`` with the documented scale
  conversion (used under the official loop's fp16 autocast, where sae-lens' casts apply);
- :func:`fused_paper_gradients`, the loss and its gradients by hand, written into the
  parameters' persistent ``.grad`` buffers (used in float32, which is every preset on a CPU):
  the five matmuls a step needs plus three element-wise passes over the codes. Autograd's
  graph for the same loss runs about a dozen element-wise passes over the (batch x d_sae)
  codes (at the paper's batch of 4,096 on a CPU, memory-bound: a tenth of a step), and
  allocates every gradient afresh each step (at batch 256 and 4x width, writing into fresh
  memory made the two weight-gradient matmuls take up to twice as long).
"""

from __future__ import annotations

import torch

__all__ = ["fused_paper_gradients", "paper_formula_loss", "paper_loss"]


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


def _gradient(param: torch.Tensor) -> torch.Tensor:
    """``param.grad``, allocated once: each step overwrites it (see the module docstring)."""
    if param.grad is None:  # torch refuses a .grad of another shape, dtype or device
        param.grad = torch.empty_like(param)
    return param.grad


@torch.no_grad()
def fused_paper_gradients(sae, x: torch.Tensor, l1: float) -> tuple[torch.Tensor, dict]:
    """The paper's loss on sae-lens' parameters with its gradients written by hand (float32).

    Same ``(loss, parts)`` contract as :func:`paper_loss`, and the same effect as
    ``opt.zero_grad(); loss.backward()``: every parameter's ``.grad`` holds the loss's gradient
    (overwritten in place, never accumulated). The gradients are the five matmuls a step needs
    plus three passes over the batch-by-width codes::

        g = 2(x̂ - x)/(B·d)     ∇W_d = zᵀg     ∇b_d = Σ g
        g_z = (g W_dᵀ + λ/(B·m)) ⊙ [z > 0]     ∇W_e = xᵀg_z     ∇b_e = Σ g_z

    The SAE must read centred inputs with no activation normalisation, as
    :func:`moralkit.sae.train.new_training_sae` builds it.
    """
    cfg = sae.cfg
    if cfg.apply_b_dec_to_input or getattr(cfg, "normalize_activations", "none") != "none":
        raise ValueError("fused_paper_gradients needs an SAE on centred, unnormalised inputs")
    z = torch.addmm(sae.b_enc, x, sae.W_enc).relu_()
    err = torch.addmm(sae.b_dec, z, sae.W_dec).sub_(x)
    flat = err.view(-1)
    mse = torch.dot(flat, flat) / err.numel()
    # per-latent sums: the L1 term, and (codes >= 0) which latents fired, in one pass
    column_sums = z.sum(0)
    l1_term = column_sums.sum() / z.numel()
    g = err.mul_(2 / err.numel())
    torch.mm(z.T, g, out=_gradient(sae.W_dec))
    torch.sum(g, 0, out=_gradient(sae.b_dec))
    # d/dz of λ·mean(z) is a constant; ReLU passes gradient only where the code is positive
    # (|z| = z there, and at z = 0 both the formula and autograd give zero)
    gz = (g @ sae.W_dec.T).add_(l1 / z.numel())
    torch.ops.aten.threshold_backward.grad_input(gz, z, 0, grad_input=gz)
    torch.mm(x.T, gz, out=_gradient(sae.W_enc))
    torch.sum(gz, 0, out=_gradient(sae.b_enc))
    return mse + l1 * l1_term, {"mse": mse, "l1": l1_term, "z": z, "column_sums": column_sums}
