"""SAE pretraining: the paper/sae-lens loss conversion, λ adaptation, schedule, training."""

import copy
import time

import numpy as np
import pytest
import torch

from moralkit.sae.config import PRESETS, preset
from moralkit.sae.resample import resample_dead
from moralkit.sae.train import (
    adapt_l1,
    clip_gradients,
    fused_paper_gradients,
    lr_factor,
    new_training_sae,
    paper_formula_loss,
    paper_loss,
    steps_per_epoch,
    train_sae,
)


def _one_step(sae, x, l1, loss_fn, opt_cls, clip=1.0, scale=1.0):
    sae = copy.deepcopy(sae)
    opt = opt_cls(sae.parameters(), lr=1e-2)
    if loss_fn is fused_paper_gradients:  # writes the gradients itself (scale 1)
        fused_paper_gradients(sae, x, l1)
    else:
        (loss_fn(sae, x, l1) * scale).backward()
    norm = torch.nn.utils.clip_grad_norm_(sae.parameters(), clip)
    opt.step()
    return sae, float(norm)


def _paper(sae, x, l1):
    return paper_formula_loss(sae, x, l1)


def _via_sae_lens(sae, x, l1):
    return paper_loss(sae, x, l1)[0]


@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, torch.optim.AdamW])
@pytest.mark.parametrize("loss_fn", [_via_sae_lens, fused_paper_gradients])
def test_one_step_paper_formula_equals_sae_lens_conversion_and_fused_step(opt_cls, loss_fn):
    torch.manual_seed(0)
    sae = new_training_sae(8, 32, seed=1)
    with torch.no_grad():  # non-zero biases, so their gradients are compared too
        sae.b_enc.normal_()
        sae.b_dec.normal_()
    x = torch.randn(64, 8) * 5  # large inputs: the gradient norm exceeds the clip of 1.0
    a, norm_a = _one_step(sae, x, 0.05, _paper, opt_cls)
    b, norm_b = _one_step(sae, x, 0.05, loss_fn, opt_cls)
    assert norm_a > 1.0, "the test must exercise clipping"
    assert norm_a == pytest.approx(norm_b, rel=1e-5)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6, rtol=1e-5), name
    assert not torch.allclose(a.W_enc, sae.W_enc)  # the step did move the weights


def test_unscaled_sae_lens_loss_gives_another_clipped_update():
    torch.manual_seed(0)
    sae = new_training_sae(8, 32, seed=1)
    x = torch.randn(64, 8) * 5
    a, _ = _one_step(sae, x, 0.05, _via_sae_lens, torch.optim.SGD, clip=1e9)
    b, _ = _one_step(sae, x, 0.05, _via_sae_lens, torch.optim.SGD, clip=1.0, scale=8.0)
    c, _ = _one_step(sae, x, 0.05, _via_sae_lens, torch.optim.SGD, clip=1.0)
    # without clipping the scale-8 loss would move 8x further; clipping caps both
    assert not torch.allclose(a.W_enc, c.W_enc)
    assert not torch.allclose(b.W_enc - sae.W_enc, 8 * (c.W_enc - sae.W_enc))


@pytest.mark.parametrize("loss_fn", [paper_loss, fused_paper_gradients])
def test_paper_loss_parts_match_the_formula(loss_fn):
    torch.manual_seed(0)
    sae = new_training_sae(6, 12, seed=2)
    x = torch.randn(10, 6)
    loss, parts = loss_fn(sae, x, 0.3)
    z = torch.relu(x @ sae.W_enc + sae.b_enc)
    mse = torch.nn.functional.mse_loss(z @ sae.W_dec + sae.b_dec, x)
    assert float(parts["mse"]) == pytest.approx(float(mse), rel=1e-5)
    assert float(parts["l1"]) == pytest.approx(float(z.mean()), rel=1e-5)
    assert float(loss) == pytest.approx(float(mse + 0.3 * z.mean()), rel=1e-5)
    assert torch.allclose(parts["z"], z, atol=1e-6)
    assert torch.allclose(parts["column_sums"], z.sum(0), atol=1e-5)  # per latent, summed


def test_fused_gradients_overwrite_their_buffers_and_equal_autograd():
    torch.manual_seed(0)
    sae = new_training_sae(6, 12, seed=2)
    with torch.no_grad():
        sae.b_enc.normal_()
    x = torch.randn(10, 6)
    paper_formula_loss(sae, x, 0.3).backward()
    expected = {name: p.grad.clone() for name, p in sae.named_parameters()}
    for p in sae.parameters():
        p.grad = torch.full_like(p, 7.0)  # a stale gradient: must be overwritten, not added to
    buffers = {name: p.grad.data_ptr() for name, p in sae.named_parameters()}
    for _ in range(2):  # and the same again: nothing accumulates across steps
        fused_paper_gradients(sae, x, 0.3)
        for name, p in sae.named_parameters():
            assert torch.allclose(p.grad, expected[name], atol=1e-6), name
            assert p.grad.data_ptr() == buffers[name], f"{name}: a new gradient was allocated"


def test_clip_gradients_matches_torch():
    torch.manual_seed(0)
    for scale in (0.01, 100.0):  # below the threshold (left alone) and above it (clipped)
        mine, theirs = new_training_sae(6, 12, seed=2), new_training_sae(6, 12, seed=2)
        for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
            a.grad = torch.randn_like(a) * scale
            b.grad = a.grad.clone()
        clip_gradients(mine, 1.0)
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 1.0)
        for a, b in zip(mine.parameters(), theirs.parameters(), strict=True):
            assert torch.allclose(a.grad, b.grad, rtol=1e-5, atol=1e-8)


def test_fused_loss_refuses_an_sae_that_centres_its_own_input():
    sae = new_training_sae(6, 12, seed=2)
    sae.cfg.apply_b_dec_to_input = True
    with pytest.raises(ValueError, match="centred"):
        fused_paper_gradients(sae, torch.randn(4, 6), 0.3)


@pytest.mark.parametrize(
    ("l0", "factor"), [(101.0, 1.2), (60.0, 1.05), (50.0, 1.0), (44.0, 0.95), (55.0, 1.0)]
)
def test_adapt_l1_follows_the_paper_rule(l0, factor):
    config = preset("paper-code")  # target L0 50
    assert adapt_l1(1e-3, l0, config) == pytest.approx(1e-3 * factor)


def test_adapt_l1_is_clipped():
    config = preset("paper-code")
    assert adapt_l1(99.0, 1e6, config) == config.l1_max
    assert adapt_l1(1.01e-6, 0.0, config) == config.l1_min


def test_on_epoch_sees_every_history_row_and_its_time_is_not_training_time():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    seen = []

    def slow_logger(row):
        seen.append(row)
        time.sleep(0.5)  # two epochs: a second outside training

    config = preset("tiny", width=16, epochs=2)
    result = train_sae(x[:250], x[250:], config, progress=False, on_epoch=slow_logger)
    assert [r["epoch"] for r in seen] == list(result.history["epoch"]) == [1, 2]
    assert seen[-1]["val_mse"] == pytest.approx(result.history["val_mse"].iloc[-1])
    assert result.train_seconds < 1.0  # the callback's second would push it past


def test_lambda_adapts_toward_target_on_a_toy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 16)).astype(np.float32)
    config = preset("tiny", width=64, target_l0=4.0, epochs=6, l1_init=1e-2)
    result = train_sae(x[:500], x[500:], config, progress=False)
    lam = result.history["lambda"].to_numpy()
    l0 = result.history["l0"].to_numpy()
    assert (l0[:-1] > 2 * config.target_l0).all()  # far above target ...
    assert np.allclose(lam[1:] / lam[:-1], 1.2)  # ... so λ grows by 1.2 each epoch
    assert l0[-1] < l0[0]


def test_lr_schedule_warms_up_then_decays_to_end_fraction():
    config = preset("paper-code")
    assert lr_factor(0, 10, config) == pytest.approx(config.warmup_start)
    assert lr_factor(50, 10, config) == pytest.approx(1.0)
    assert lr_factor(config.epochs * 10, 10, config) == pytest.approx(config.lr_end_fraction)


def test_training_reduces_error_and_keeps_unit_decoder_rows():
    rng = np.random.default_rng(1)
    atoms = rng.normal(size=(12, 16))
    codes = rng.exponential(size=(700, 12)) * (rng.random((700, 12)) < 0.2)
    x = (codes @ atoms + 3.0).astype(np.float32)
    result = train_sae(x[:600], x[600:], preset("tiny", width=32, epochs=8), progress=False)
    hist = result.history
    assert hist["val_mse"].iloc[-1] < hist["val_mse"].iloc[0]
    assert np.allclose(result.centre, x[:600].mean(axis=0), atol=1e-4)
    norms = result.sae.W_dec.detach().norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert {"val_explained_variance", "val_dead", "val_dense", "lambda"} <= set(hist.columns)


def test_presets_follow_the_paper():
    assert PRESETS["paper-run"].d_sae(4096) == 65_536
    assert PRESETS["paper-code"].d_sae(4096) == 16_384
    assert PRESETS["paper-run"].target_l0 == 100 and PRESETS["paper-run"].epochs == 200
    assert PRESETS["paper-code"].lr == 1e-4 and PRESETS["paper-code"].batch_size == 4096
    for name in ("paper-run", "paper-code"):  # the official loop (methods/sae.md, departures)
        assert PRESETS[name].drop_last and PRESETS[name].batch_mean
        assert PRESETS[name].autocast == "float16"
        assert PRESETS[name].resample_every == 0 and PRESETS[name].l1_adapt_every == 0


def test_drop_last_counts_full_batches_and_batch_mean_weights_batches_equally():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(330, 8)).astype(np.float32)
    config = preset("tiny", width=16, epochs=2, batch_size=100, warmup_epochs=1)
    pooled = train_sae(x[:250], x[250:], config, progress=False)
    official = preset("tiny", width=16, epochs=2, batch_size=100, warmup_epochs=1,
                      drop_last=True, batch_mean=True)  # fmt: skip
    dropped = train_sae(x[:250], x[250:], official, progress=False)
    assert steps_per_epoch(250, config) == 3 and steps_per_epoch(250, official) == 2
    assert pooled.history["step"].tolist() == [3, 6] and dropped.history["step"].tolist() == [2, 4]
    assert pooled.samples_seen == 500 and dropped.samples_seen == 400


def test_fp16_autocast_with_a_scaler_trains_to_float32_weights():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    config = preset("tiny", width=16, epochs=2, autocast="float16")
    result = train_sae(x[:250], x[250:], config, progress=False)
    assert result.sae.W_enc.dtype == torch.float32 and np.isfinite(result.history["loss"]).all()
    with pytest.raises(ValueError, match="autocast"):
        preset("tiny", autocast="int8")


def test_per_step_lambda_applies_the_paper_rule_every_few_steps():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1100, 16)).astype(np.float32)
    config = preset("tiny", width=64, epochs=2, batch_size=100, target_l0=1.0, l1_init=1e-3,
                    l1_adapt_every=5)  # fmt: skip
    result = train_sae(x[:1000], x[1000:], config, progress=False)
    hist = result.history  # L0 stays far above 1: λ x 1.2 every 5 steps, 2 per epoch of 10
    assert hist["lambda"].tolist() == pytest.approx([1e-3, 1e-3 * 1.2**2])
    assert hist["lambda_end"].tolist() == pytest.approx([1e-3 * 1.2**2, 1e-3 * 1.2**4])


def test_resampling_gives_dead_latents_new_unit_directions_and_fresh_optimiser_state():
    torch.manual_seed(0)
    sae = new_training_sae(8, 12, seed=0)
    opt = torch.optim.AdamW(sae.parameters(), lr=1e-2)
    x = torch.randn(64, 8)
    loss, _ = paper_loss(sae, x, 1e-3)
    loss.backward()
    opt.step()
    before = {k: v.detach().clone() for k, v in sae.state_dict().items()}
    fired = torch.ones(12, dtype=torch.bool)
    fired[[2, 7]] = False
    n = resample_dead(sae, opt, fired, x, torch.Generator().manual_seed(0))
    assert n == 2
    alive = fired.nonzero().flatten()
    assert torch.equal(sae.W_dec[alive], before["W_dec"][alive])
    assert torch.equal(sae.W_enc[:, alive], before["W_enc"][:, alive])
    assert not torch.equal(sae.W_dec[[2, 7]], before["W_dec"][[2, 7]])
    assert torch.allclose(sae.W_dec[[2, 7]].norm(dim=1), torch.ones(2))
    assert torch.equal(sae.b_enc[[2, 7]], torch.zeros(2))
    state = opt.state[sae.W_dec]
    assert torch.equal(state["exp_avg"][[2, 7]], torch.zeros(2, 8))
    assert state["exp_avg"][alive].abs().sum() > 0
    assert resample_dead(sae, opt, torch.ones(12, dtype=torch.bool), x, torch.Generator()) == 0
