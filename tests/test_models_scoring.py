"""The one scoring and generation module against hand computations on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moralkit.models import load_model
from moralkit.models.generation import DecodingConfig, generate, greedy
from moralkit.models.scoring import (
    continuation_logprobs,
    decoder_forward,
    lm_head_logits,
    next_token_logits,
    perplexity,
    token_nll,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["Help a friend.", "A longer sentence, so that the batch needs padding."]


@pytest.fixture(scope="module")
def capped():
    """tiny-gemma3 with final-logit soft-capping at a cap small enough to bend every logit."""
    loaded = load_model("tiny-gemma3")
    loaded.model.config.get_text_config().final_logit_softcapping = 0.5
    return loaded


def _ids(loaded, text: str) -> torch.Tensor:
    return torch.tensor([loaded.tokenizer(text)["input_ids"]])


def test_softcapping_applied_exactly_once(capped):
    ids = _ids(capped, TEXTS[0])
    with torch.inference_mode():
        hidden = decoder_forward(capped, ids, None).last_hidden_state[0]
        model_logits = capped.model(ids).logits[0].float()  # the model caps once itself
        raw = hidden @ capped.model.get_output_embeddings().weight.T
    ours = lm_head_logits(capped, hidden)
    torch.testing.assert_close(ours, model_logits)
    torch.testing.assert_close(ours, torch.tanh(raw / 0.5) * 0.5)
    assert ours.abs().max() < 0.5 < raw.abs().max()  # capped, and the cap bites
    twice = torch.tanh(ours / 0.5) * 0.5
    assert not torch.allclose(ours, twice, atol=1e-3)


def test_continuation_logprobs_use_the_capped_head(capped):
    context, continuation = "Is it kind?", " Yes, it is."
    got, count = continuation_logprobs(capped, [context], [continuation])
    head = capped.tokenizer(context)["input_ids"]
    tail = capped.tokenizer(continuation, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logp = torch.log_softmax(capped.model(torch.tensor([head + tail])).logits[0].float(), -1)
    expected = sum(float(logp[len(head) + i - 1, t]) for i, t in enumerate(tail))
    assert count[0] == len(tail) and got[0] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-qwen2"])
def test_token_nll_equals_a_hand_computation(name):
    """Every token of each text is predicted, the first after BOS (added by tiny-llama's
    tokenizer, put in front by the scorer for tiny-qwen2's, which adds none); the sum of
    -log p by hand from the model's full logits."""
    loaded = load_model(name)
    tok = loaded.tokenizer
    got = token_nll(loaded, TEXTS, batch_size=2)
    total, count = 0.0, 0
    for row, text in zip(got, TEXTS, strict=True):
        tail = tok(text, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([[tok.bos_token_id, *tail]])
        with torch.inference_mode():
            logp = torch.log_softmax(loaded.model(ids).logits[0].double(), -1).numpy()
        nll = -sum(logp[i, t] for i, t in enumerate(tail))
        assert row[1] == len(tail) and row[0] == pytest.approx(nll, rel=1e-5)
        total, count = total + nll, count + len(tail)
    assert perplexity(loaded, TEXTS) == pytest.approx(np.exp(total / count), rel=1e-5)


def test_next_token_logits_with_and_without_the_shared_prefix():
    loaded = load_model("tiny-llama")
    rows = [loaded.tokenizer("Question: " + t)["input_ids"] for t in TEXTS + ["Go."]]
    full = next_token_logits(loaded, rows, batch_size=2, share_prefix=False)
    shared = next_token_logits(loaded, rows, batch_size=2)
    torch.testing.assert_close(shared, full, atol=1e-4, rtol=1e-4)
    with torch.inference_mode():
        alone = loaded.model(torch.tensor([rows[1]])).logits[0, -1].float()
    torch.testing.assert_close(full[1], alone, atol=1e-4, rtol=1e-4)


def _argmax_loop(loaded, text: str, n: int, special: bool) -> str:
    tok = loaded.tokenizer
    ids = tok(text, add_special_tokens=special)["input_ids"]
    new = []
    for _ in range(n):
        with torch.inference_mode():
            logits = loaded.model(torch.tensor([ids + new])).logits[0, -1]
        new.append(int(logits.argmax()))
        if new[-1] == tok.eos_token_id:
            break
    return tok.decode(new, skip_special_tokens=True)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3"])
def test_greedy_generation_equals_a_manual_argmax_loop(name):
    loaded = load_model(name)
    special = name != "tiny-llama"  # tiny-llama's prompts go through its chat template here
    texts = (
        TEXTS
        if special
        else [
            loaded.tokenizer.apply_chat_template(
                [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
            )
            for t in TEXTS
        ]
    )
    got = generate(loaded, texts, greedy(6), special, batch_size=2)  # left-padded batch
    assert got == [_argmax_loop(loaded, t, 6, special) for t in texts]


def test_sampled_generation_is_reproducible_per_seed():
    loaded = load_model("tiny-qwen2")
    sampled = DecodingConfig(max_new_tokens=8, temperature=1.5, top_p=1.0)
    first = generate(loaded, TEXTS[:1], sampled, True, seed=3)
    assert generate(loaded, TEXTS[:1], sampled, True, seed=3) == first
    draws = {generate(loaded, TEXTS[:1], sampled, True, seed=s)[0] for s in range(4)}
    assert len(draws) > 1  # the seed matters: not greedy in disguise


@pytest.mark.parametrize("call_slots", [0, 10_000])  # one batch per length; one batch in all
@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3"])
def test_shared_context_sums_equal_scoring_each_pair_alone(name, call_slots, monkeypatch):
    """The contexts run once for several continuation sets of different lengths: the same
    sums and counts as running every context + continuation on its own."""
    from moralkit.models import scoring
    from moralkit.models.scoring import shared_context_sums

    monkeypatch.setattr(scoring, "CALL_SLOTS", call_slots)
    loaded = load_model(name)
    contexts = ["A short context", "", "A rather longer context with more words in it"]
    sets = [[" yes", " no, not at all", " maybe so"], [" a b c d e", " f", " g h"]]
    got = shared_context_sums(loaded, contexts, sets)
    for (totals, counts), texts in zip(got, sets, strict=True):
        want, n = continuation_logprobs(loaded, contexts, texts, batch_size=1)
        np.testing.assert_allclose(totals, want, atol=1e-4, rtol=1e-5)
        np.testing.assert_array_equal(counts, n)


def test_length_groups_split_only_where_padding_outweighs_a_call():
    from moralkit.models.scoring import length_groups

    lengths = [20, 1, 1, 1, 2]
    as_sets = lambda groups: [sorted(int(i) for i in g) for g in groups]  # noqa: E731
    assert as_sets(length_groups(lengths, call_slots=1)) == [[1, 2, 3], [4], [0]]
    assert as_sets(length_groups(lengths, call_slots=100)) == [[0, 1, 2, 3, 4]]
    rng = np.random.default_rng(0)
    for _ in range(20):  # the split is optimal: no cut of the sorted rows costs less
        sizes = np.sort(rng.integers(1, 30, size=6))
        groups = length_groups(sizes, call_slots=8)
        cost = sum(len(g) * sizes[g].max() + 8 for g in groups)
        for mask in range(32):  # every way to cut 6 sorted rows
            cuts = [0, *[i + 1 for i in range(5) if mask >> i & 1], 6]
            pairs = zip(cuts[:-1], cuts[1:], strict=True)
            other = sum((b - a) * sizes[b - 1] + 8 for a, b in pairs)
            assert cost <= other
        assert sorted(np.concatenate(groups).tolist()) == list(range(6))
