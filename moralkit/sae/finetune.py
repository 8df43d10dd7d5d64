"""Selective fine-tuning of the moral features with the code's six-term objective
(paper §4.4; book: Methods › SAE surgery, methods/sae.md).

All terms read centred activations ``x`` and codes ``z``. Dimension read-outs are
``a = z Wᵀ`` with ``W`` the identification's read-out weights (top positive features per
dimension, |r|-weighted, summing to 1). Terms and the code's weights:

1. reconstruction, mean-MSE (1.0);
2. sparsity, mean|z| (1e-4);
3. absolute alignment, MSE between sigmoid(a_j) and the moral vector on entries > 0 (0.5);
4. polarity contrast, hinge relu(m − V + C) on virtue samples and relu(m − C + V) on vice
   samples for each of the five pole pairs, V/C the mean activation of the pair's virtue/vice
   features, needing ``min_pole_samples`` of each (0.3, m = 0.5);
5. typicality ordering, hinge relu(m − Δt·Δa_j) on up to 100 random pairs of positive samples
   per dimension with ≥ 16 of them (0.2, m = 0.1);
6. off-dimension, z² of strictly monosemantic features on samples whose argmax dimension is
   not the feature's own (an all-zero vector's argmax is the first dimension, as in the code)
   (0.1).

The paper page names three of these (alignment, polarity contrast, prototype ordering): set the
other weights to 0 for that version. Only the selected features' encoder rows, encoder biases
and decoder rows train; they are copies outside the frozen sae-lens weights, so every other
weight stays bit-identical.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from moralkit.records import MoralRecords
from moralkit.sae.config import FinetuneConfig
from moralkit.sae.identify import Identification, pole_scores
from moralkit.sae.train import clip_gradients, renormalise_decoder

__all__ = [
    "FinetuneResult",
    "SelectedFeatures",
    "TERMS",
    "finetune_sae",
    "objective_terms",
    "sampler_weights",
]

TERMS: tuple[str, ...] = (
    "reconstruction",
    "l1",
    "alignment",
    "polarity",
    "typicality",
    "off_dimension",
)


@dataclass
class Batch:
    """Centred activations and their labels, as tensors."""

    x: torch.Tensor
    y: torch.Tensor  # (b, 10) moral vectors
    m_virtue: torch.Tensor
    m_vice: torch.Tensor

    @classmethod
    def of(cls, x: np.ndarray, vectors: np.ndarray) -> Batch:
        mv, mc = pole_scores(vectors)
        f = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        return cls(f(x), f(vectors), f(mv), f(mc))

    def take(self, idx: torch.Tensor) -> Batch:
        return Batch(self.x[idx], self.y[idx], self.m_virtue[idx], self.m_vice[idx])


class SelectedFeatures(torch.nn.Module):
    """Trainable copies of the selected features' weights around a frozen sae-lens SAE."""

    def __init__(self, sae, selected: np.ndarray) -> None:
        super().__init__()
        self.sae = sae
        idx = torch.as_tensor(np.asarray(selected, dtype=np.int64))
        self.register_buffer("idx", idx)
        keep = torch.ones(sae.cfg.d_sae, dtype=torch.bool)
        keep[idx] = False
        self.register_buffer("rest", torch.nonzero(keep).flatten())
        self.W_enc = torch.nn.Parameter(sae.W_enc.detach()[:, idx].clone())
        self.b_enc = torch.nn.Parameter(sae.b_enc.detach()[idx].clone())
        self.W_dec = torch.nn.Parameter(sae.W_dec.detach()[idx].clone())
        for p in sae.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, x̂) with the selected features taken from the trainable copies."""
        s = self.sae
        z_rest = torch.relu(x @ s.W_enc[:, self.rest] + s.b_enc[self.rest])
        z_sel = torch.relu(x @ self.W_enc + self.b_enc)
        x_hat = z_rest @ s.W_dec[self.rest] + z_sel @ self.W_dec + s.b_dec
        z = torch.empty(len(x), s.cfg.d_sae, dtype=x.dtype, device=x.device)
        z = z.index_copy(1, self.rest, z_rest).index_copy(1, self.idx, z_sel)
        return z, x_hat

    def renormalise(self) -> None:
        renormalise_decoder(self)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the trained weights into the sae-lens module."""
        self.sae.W_enc[:, self.idx] = self.W_enc
        self.sae.b_enc[self.idx] = self.b_enc
        self.sae.W_dec[self.idx] = self.W_dec


def _polarity(z, b: Batch, pairs, config: FinetuneConfig) -> torch.Tensor:
    virtue, vice = b.m_virtue > config.pole_threshold, b.m_vice > config.pole_threshold
    if virtue.sum() < config.min_pole_samples or vice.sum() < config.min_pole_samples:
        return z.new_zeros(())
    hinges = []
    for v_ids, c_ids in pairs:
        if len(v_ids) == 0 or len(c_ids) == 0:
            continue
        V, C = z[:, v_ids].mean(dim=1), z[:, c_ids].mean(dim=1)
        hinges.append(F.relu(config.polarity_margin - V[virtue] + C[virtue]).mean())
        hinges.append(F.relu(config.polarity_margin - C[vice] + V[vice]).mean())
    return torch.stack(hinges).mean() if hinges else z.new_zeros(())


def _typicality(a, b: Batch, config: FinetuneConfig, gen: torch.Generator) -> torch.Tensor:
    terms = []
    for j in range(b.y.shape[1]):
        pos = torch.nonzero(b.y[:, j] > 0).flatten()
        if len(pos) < config.min_dimension_samples:
            continue
        n = config.typicality_pairs
        i, k = (pos[torch.randint(len(pos), (n,), generator=gen)] for _ in range(2))
        dt, da = b.y[i, j] - b.y[k, j], a[i, j] - a[k, j]
        terms.append(F.relu(config.typicality_margin - dt * da).mean())
    return torch.stack(terms).mean() if terms else a.new_zeros(())


def objective_terms(
    z: torch.Tensor,
    x_hat: torch.Tensor,
    b: Batch,
    ident: Identification,
    config: FinetuneConfig,
    gen: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The six unweighted terms (see the module docstring) for one batch."""
    gen = gen if gen is not None else torch.Generator().manual_seed(config.seed)
    W = torch.as_tensor(ident.readout, dtype=z.dtype)
    a = z @ W.T
    mask = b.y > 0
    align = ((torch.sigmoid(a) - b.y) ** 2)[mask].mean() if mask.any() else z.new_zeros(())
    pairs = [(torch.as_tensor(v), torch.as_tensor(c)) for v, c in ident.pairs]
    off = z.new_zeros(())
    if len(ident.strict):
        strict = torch.as_tensor(ident.strict)
        wrong = b.y.argmax(dim=1)[:, None] != torch.as_tensor(ident.primary)[None, :]
        if wrong.any():
            off = (z[:, strict] ** 2)[wrong].mean()
    return {
        "reconstruction": F.mse_loss(x_hat, b.x),
        "l1": z.abs().mean(),
        "alignment": align,
        "polarity": _polarity(z, b, pairs, config),
        "typicality": _typicality(a, b, config, gen),
        "off_dimension": off,
    }


def weighted_total(terms: dict[str, torch.Tensor], config: FinetuneConfig) -> torch.Tensor:
    """Σ weight x term with the config's ``w_<term>`` weights."""
    return sum(getattr(config, f"w_{name}") * value for name, value in terms.items())


def sampler_weights(vectors: np.ndarray, bug: bool = False) -> np.ndarray:
    """Sampling weight per record from typicality t = max(m_virtue, m_vice) (paper §4.4).

    Intended (the code's rules in their evident order): 3.0 for t > 0.75 (the prototypes),
    2.0 for t in (0.5, 0.75], 1.5 for t in (0.25, 0.5], 1.0 for 0 < t ≤ 0.25, 0.3 for t = 0.
    ``bug=True``: as the released code, whose later ``t > 0.5 → 2.0`` overwrites the 3.0.
    Then the minority pole is upweighted by min(ratio, 3) when virtue:vice is > 1.5 or < 0.67.
    """
    mv, mc = pole_scores(vectors)
    t = np.maximum(mv, mc)
    w = np.ones(len(t))
    w[t == 0] = 0.3
    w[(t > 0.25) & (t <= 0.5)] = 1.5
    w[t > 0.5] = 2.0
    if not bug:
        w[t > 0.75] = 3.0
    virtue, vice = mv > mc, mc > mv
    if virtue.sum() and vice.sum():
        ratio = virtue.sum() / vice.sum()
        if ratio > 1.5:
            w[vice] *= min(ratio, 3.0)
        elif ratio < 0.67:
            w[virtue] *= min(1 / ratio, 3.0)
    return w


@dataclass
class FinetuneResult:
    """The fine-tuned SAE (sae-lens module), per-epoch term curves, the kept (best) epoch
    and whether it beat the pretrained SAE (epoch 0) on the validation total."""

    sae: object
    history: pd.DataFrame
    best_epoch: int
    improved: bool = True


def _epoch(model, opt, sched, data: Batch, ident, config, gen) -> dict[str, float]:
    w = torch.as_tensor(sampler_weights(data.y.numpy(), config.sampler_bug))
    order = torch.multinomial(w, len(w), replacement=True, generator=gen)
    sums = dict.fromkeys((*TERMS, "total"), 0.0)
    for i in range(0, len(order), config.batch_size):
        b = data.take(order[i : i + config.batch_size])
        z, x_hat = model(b.x)
        terms = objective_terms(z, x_hat, b, ident, config, gen)
        total = weighted_total(terms, config)
        opt.zero_grad(set_to_none=True)
        total.backward()
        clip_gradients(model, config.grad_clip)
        opt.step()
        sched.step()
        model.renormalise()
        for k, v in {**terms, "total": total}.items():
            sums[k] += float(v.detach()) * len(b.x)
    return {k: v / len(order) for k, v in sums.items()}


@torch.no_grad()
def _evaluate(model, data: Batch, ident, config) -> dict[str, float]:
    z, x_hat = model(data.x)
    gen = torch.Generator().manual_seed(config.seed + 1)  # same pairs every epoch
    terms = objective_terms(z, x_hat, data, ident, config, gen)
    return {
        **{k: float(v) for k, v in terms.items()},
        "total": float(weighted_total(terms, config)),
    }


def finetune_sae(
    sae,
    centre: np.ndarray,
    train_x: np.ndarray,
    train_records: MoralRecords,
    val_x: np.ndarray,
    val_records: MoralRecords,
    ident: Identification,
    config: FinetuneConfig | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Fine-tune a copy of ``sae`` (a sae-lens training SAE) on raw activations and records."""
    config = config or FinetuneConfig()
    sae = copy.deepcopy(sae)
    model = SelectedFeatures(sae, ident.selected)
    train = Batch.of(np.asarray(train_x) - centre, train_records.vectors)
    val = Batch.of(np.asarray(val_x) - centre, val_records.vectors)
    params = [model.W_enc, model.b_enc, model.W_dec]
    opt = torch.optim.AdamW(
        params, lr=config.lr, weight_decay=config.weight_decay, betas=tuple(config.betas)
    )
    steps = config.epochs * -(-len(train.x) // config.batch_size)
    # OneCycleLR divides by its warm-up length: a tiny training set (a few steps in all) would
    # give a zero-length warm-up, so the schedule is stretched to at least two warm-up steps
    min_steps = math.ceil(2 / max(config.warmup_fraction, 1e-6)) + 1
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=config.lr,
        total_steps=max(steps, min_steps),
        pct_start=config.warmup_fraction,
        anneal_strategy="cos",
        div_factor=config.div_factor,
        final_div_factor=config.final_div_factor,
    )
    gen = torch.Generator().manual_seed(config.seed)
    # epoch 0 (the pretrained SAE) is reported, not a candidate: as in the official code the
    # best validation total starts at +inf, so the kept state is always a fine-tuned epoch
    start = _evaluate(model, val, ident, config)
    rows = [{"epoch": 0, **{f"val_{k}": v for k, v in start.items()}}]
    best, best_state, waited, best_epoch = math.inf, None, 0, 0
    for epoch in tqdm(range(1, config.epochs + 1), desc="fine-tune", disable=not progress):
        tr = _epoch(model, opt, sched, train, ident, config, gen)
        va = _evaluate(model, val, ident, config)
        rows.append({"epoch": epoch, **tr, **{f"val_{k}": v for k, v in va.items()}})
        if va["total"] < best - config.min_delta:
            best, best_epoch, waited = va["total"], epoch, 0
            best_state = [p.detach().clone() for p in params]
        else:
            waited += 1
            if waited >= config.patience:
                break
    with torch.no_grad():
        for p, saved in zip(params, best_state or [], strict=False):
            p.copy_(saved)
    model.write_back()
    for p in sae.parameters():
        p.requires_grad_(True)
    improved = best < start["total"]
    return FinetuneResult(sae, pd.DataFrame(rows), best_epoch, improved)
