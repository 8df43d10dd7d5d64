"""SAE steering hook: exact formula, no hook left behind, forward and generate, caching."""

from __future__ import annotations

import pytest
import sae_lens
import torch

from moralkit.models import load_model
from moralkit.steering import (
    DecodingConfig,
    SteeringConfig,
    SteeringSAE,
    active_hook_count,
    generate_responses,
    steer,
    steering,
)

LAYER = 1


@pytest.fixture(scope="module")
def loaded():
    return load_model("tiny-llama")


@pytest.fixture(scope="module")
def sae_and_centre():
    torch.manual_seed(3)
    sae = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=32, d_sae=64))
    with torch.no_grad():  # sae-lens initialises b_enc/b_dec at 0; random biases test more
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
    centre = torch.randn(32) * 0.5
    return sae, centre


def _inputs(loaded, texts=("care for the weak", "betray a friend")):
    return loaded.tokenizer(list(texts), return_tensors="pt", padding=True)


def _hidden(loaded, inputs, layer=LAYER):
    with torch.inference_mode():
        out = loaded.model(**inputs, output_hidden_states=True)
    return out.hidden_states[layer + 1], out.logits


def test_outputs_bit_identical_after_block(loaded, sae_and_centre):
    sae, centre = sae_and_centre
    inputs = _inputs(loaded)
    before_h, before_logits = _hidden(loaded, inputs)
    with steer(loaded.model, LAYER, sae, centre, strength=1.0):
        steered_h, steered_logits = _hidden(loaded, inputs)
    after_h, after_logits = _hidden(loaded, inputs)
    assert not torch.equal(before_logits, steered_logits)  # the hook did something
    assert torch.equal(before_logits, after_logits)
    assert torch.equal(before_h, after_h)
    assert active_hook_count(loaded.model) == 0


def _all_hooks(model):
    return [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()]


def test_no_hook_left_after_exception(loaded, sae_and_centre):
    sae, centre = sae_and_centre
    hooks_before = _all_hooks(loaded.model)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(loaded.model, LAYER, sae, centre):
            assert active_hook_count(loaded.model) == 1
            raise RuntimeError("boom")
    assert active_hook_count(loaded.model) == 0
    assert _all_hooks(loaded.model) == hooks_before


def test_hooked_output_matches_formula_and_hidden_states(loaded, sae_and_centre):
    """output_hidden_states at the hooked layer equals h + s·(SAE(h − c) + c − h)."""
    sae, centre = sae_and_centre
    inputs = _inputs(loaded)
    strength = 0.6
    h, _ = _hidden(loaded, inputs)
    seen = {}

    def capture(module, args, output):  # registered after the steering hook: sees its output
        seen["out"] = (output[0] if isinstance(output, tuple) else output).clone()

    with steer(loaded.model, LAYER, sae, centre, strength=strength):
        handle = loaded.model.model.layers[LAYER].register_forward_hook(capture)
        try:
            steered_h, _ = _hidden(loaded, inputs)
        finally:
            handle.remove()
    with torch.no_grad():
        expected = h + strength * (sae.decode(sae.encode(h - centre)) + centre - h)
    torch.testing.assert_close(steered_h, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(seen["out"], steered_h)


def test_selected_features_zero_the_others(loaded, sae_and_centre):
    sae, centre = sae_and_centre
    inputs = _inputs(loaded)
    h, _ = _hidden(loaded, inputs)
    chosen = [0, 5, 7]
    with steer(loaded.model, LAYER, sae, centre, features=chosen):
        steered_h, _ = _hidden(loaded, inputs)
    with torch.no_grad():
        codes = sae.encode(h - centre)
        mask = torch.zeros(64)
        mask[chosen] = 1
        expected = sae.decode(codes * mask) + centre
    torch.testing.assert_close(steered_h, expected, rtol=1e-5, atol=1e-5)


def _finetuned_copy(sae, features):
    """A copy of ``sae`` whose ``features`` changed, as fine-tuning changes them."""
    ft = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(d_in=32, d_sae=64))
    ft.load_state_dict(sae.state_dict())
    with torch.no_grad():
        ft.W_enc[:, features] += 0.3 * torch.randn(32, len(features))
        ft.W_dec[features] += 0.3 * torch.randn(len(features), 32)
    return ft


def test_the_error_preserving_arm_adds_only_what_fine_tuning_changed(loaded, sae_and_centre):
    """mode "delta": h + s·(SAE_ft(h − c) − SAE_pre(h − c)); identical SAEs change nothing."""
    pre, centre = sae_and_centre
    torch.manual_seed(4)
    ft = _finetuned_copy(pre, [3, 9])
    inputs = _inputs(loaded)
    h, base_logits = _hidden(loaded, inputs)
    bundle = {"delta": SteeringSAE(ft, centre, (3, 9), base=pre)}
    with steering(loaded.model, SteeringConfig("delta", LAYER, 0.7), bundle):
        steered_h, _ = _hidden(loaded, inputs)
    with torch.no_grad():
        x = h - centre
        expected = h + 0.7 * (ft.decode(ft.encode(x)) - pre.decode(pre.encode(x)))
    torch.testing.assert_close(steered_h, expected, rtol=1e-5, atol=1e-5)
    same = {"delta": SteeringSAE(pre, centre, None, base=pre)}
    with steering(loaded.model, SteeringConfig("delta", LAYER, 1.0), same):
        _, unchanged = _hidden(loaded, inputs)
    assert torch.equal(unchanged, base_logits)  # no fine-tuning, no change: errors never enter
    with pytest.raises(ValueError, match="base"):
        with steering(
            loaded.model, SteeringConfig("delta", LAYER), {"delta": SteeringSAE(ft, centre)}
        ):
            pass
    assert active_hook_count(loaded.model) == 0


def test_strength_zero_and_none_mode_leave_outputs_unchanged(loaded, sae_and_centre):
    sae, centre = sae_and_centre
    inputs = _inputs(loaded)
    _, base = _hidden(loaded, inputs)
    with steer(loaded.model, LAYER, sae, centre, strength=0.0) as hook:
        _, zero = _hidden(loaded, inputs)
    assert hook.calls == 1
    assert torch.equal(base, zero)
    with steering(loaded.model, SteeringConfig(stage="none")) as hook:
        _, none = _hidden(loaded, inputs)
    assert hook is None and torch.equal(base, none)


def test_hook_rewrites_every_generation_step(loaded, sae_and_centre):
    sae, centre = sae_and_centre
    inputs = loaded.tokenizer(["be kind"], return_tensors="pt")
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    with torch.inference_mode():
        base = loaded.model.generate(**inputs, **kwargs)
    with steer(loaded.model, LAYER, sae, centre) as hook, torch.inference_mode():
        steered = loaded.model.generate(**inputs, **kwargs)
    # one prefill pass plus one pass per further token
    assert hook.calls == steered.shape[1] - inputs["input_ids"].shape[1]
    assert hook.positions == inputs["input_ids"].shape[1] + hook.calls - 1
    assert not torch.equal(base, steered)
    with torch.inference_mode():
        again = loaded.model.generate(**inputs, **kwargs)
    assert torch.equal(base, again)
    assert active_hook_count(loaded.model) == 0


def test_steering_config_validates_and_needs_its_sae(loaded, sae_and_centre):
    with pytest.raises(ValueError, match="stage"):
        SteeringConfig(stage="finetune")
    with pytest.raises(ValueError, match="finetuned"):
        with steering(loaded.model, SteeringConfig(stage="finetuned", layer=1)):
            pass
    sae, centre = sae_and_centre
    bundle = {"pretrained": SteeringSAE(sae, centre, selected=None)}
    with pytest.raises(ValueError, match="selection"):
        with steering(loaded.model, SteeringConfig("pretrained", 1, features="selected"), bundle):
            pass
    with pytest.raises(ValueError, match="layer=7"):
        with steer(loaded.model, 7, sae, centre):
            pass
    assert active_hook_count(loaded.model) == 0


def test_generate_responses_caches_and_reuses(loaded, sae_and_centre, tmp_path):
    sae, centre = sae_and_centre
    saes = {"finetuned": SteeringSAE(sae, centre, (1, 2))}
    decoding = DecodingConfig(max_new_tokens=4, seed=11)
    prompts = ["help a stranger", "lie to a friend"]
    arms = [SteeringConfig("none"), SteeringConfig("finetuned", layer=1)]
    first = {
        arm.stage: generate_responses(
            loaded, prompts, arm, saes, decoding, cache_dir=tmp_path, progress=False
        )
        for arm in arms
    }
    assert not first["none"]["cached"].any()
    assert len(list(tmp_path.rglob("*.json"))) == 4
    again = generate_responses(
        loaded, prompts, arms[1], saes, decoding, cache_dir=tmp_path, progress=False
    )
    assert again["cached"].all()
    assert list(again["response"]) == list(first["finetuned"]["response"])
    # the same per-prompt seed reproduces the response without the cache
    fresh = generate_responses(
        loaded, prompts[::-1], arms[1], saes, decoding, cache_dir=tmp_path / "b", progress=False
    )
    assert list(fresh["response"]) == list(first["finetuned"]["response"])[::-1]
    assert active_hook_count(loaded.model) == 0


def test_paper_decoding_setting_differs_between_arms(loaded, tmp_path):
    from moralkit.steering.generation import PAPER_BASELINE_DECODING, decoding_for

    base = DecodingConfig(seed=5)
    none = decoding_for(SteeringConfig("none"), "paper", base)
    steered = decoding_for(SteeringConfig("finetuned", 3), "paper", base)
    assert none.max_new_tokens == PAPER_BASELINE_DECODING.max_new_tokens != steered.max_new_tokens
    assert none.seed == steered.seed == 5
    assert decoding_for(SteeringConfig("none"), "same", base) == base
    with pytest.raises(ValueError, match="decoding_setting"):
        decoding_for(SteeringConfig("none"), "vllm", base)


def test_chat_text_system_prompt_and_thinking_disabled():
    from moralkit.models.generation import chat_text
    from moralkit.models.tiny import build_tiny_tokenizer
    from moralkit.steering import PAPER_SYSTEM_PROMPT

    tok = build_tiny_tokenizer(add_bos=True, chat_template=True)
    text = chat_text(tok, "hello", PAPER_SYSTEM_PROMPT)
    assert PAPER_SYSTEM_PROMPT in text and text.endswith("<assistant>")
    assert chat_text(tok, "hello", use_template=False, fallback="Q: {prompt}") == "Q: hello"
    tok.chat_template += (
        "{% if enable_thinking is defined and not enable_thinking %}<no-think>{% endif %}"
    )
    assert chat_text(tok, "hello").endswith("<no-think>")
    plain = build_tiny_tokenizer(add_bos=True, chat_template=False)
    assert chat_text(plain, "hello") == "User: hello\nAssistant:"
    assert chat_text(plain, "hi", "Be kind.") == "Be kind.\n\nUser: hi\nAssistant:"
