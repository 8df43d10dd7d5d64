"""Pruning (chapter 10): scores by hand, set differences, exact restore, masking, keyword rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from moralkit.models import load_model
from moralkit.models.tiny import build_tiny_tokenizer
from moralkit.pruning import (
    CalibrationSet,
    ImportanceConfig,
    ImportanceIndex,
    PruneMask,
    attack_success_rate,
    encode_example,
    gradient_scores,
    importance_index,
    is_attack_success,
    jaccard,
    pruned,
    set_difference,
    wanda_scores,
)
from moralkit.pruning.importance import load_index, top_indices
from moralkit.pruning.unity import BENIGN, HARM, chance_jaccard, unity_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

V, D = 260, 4  # byte-level vocabulary of the tiny tokenizer; a 4-wide toy


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(D, D, bias=False)


class _Decoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(V, D)
        self.layers = nn.ModuleList([_Block()])

    def forward(self, input_ids, attention_mask=None):  # no attention: padding is inert
        return SimpleNamespace(last_hidden_state=self.layers[0].proj(self.embed(input_ids)))


class OneLayerToy(nn.Module):
    """embedding -> one linear layer (the only one in the 'decoder block') -> LM head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        text = SimpleNamespace(num_hidden_layers=1, final_logit_softcapping=None)
        self.config = SimpleNamespace(num_hidden_layers=1, get_text_config=lambda: text)
        self.model = _Decoder()
        self.head = nn.Linear(D, V, bias=False)

    def get_output_embeddings(self) -> nn.Linear:
        return self.head

    def forward(self, input_ids, labels=None):
        logits = self.head(self.model(input_ids).last_hidden_state)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return SimpleNamespace(loss=loss, logits=logits)


@pytest.fixture(scope="module")
def toy():
    tok = build_tiny_tokenizer(add_bos=True, chat_template=False)
    return SimpleNamespace(model=OneLayerToy().eval(), tokenizer=tok, name="toy")


CALIB = CalibrationSet("toy", ("hi", "ok"), ("yes no", "abc"))


def _hand_gradients(toy) -> list[np.ndarray]:
    """dL_i/dW for each example, written out: mean over scored positions of
    outer(H^T (softmax(H W h_t) - onehot(y_t)), h_t)."""
    E = toy.model.model.embed.weight.detach().numpy().astype(np.float64)
    W = toy.model.model.layers[0].proj.weight.detach().numpy().astype(np.float64)
    H = toy.model.head.weight.detach().numpy().astype(np.float64)
    grads = []
    for prompt, response in zip(CALIB.prompts, CALIB.responses, strict=True):
        ids, labels = (t[0].numpy() for t in encode_example(toy.tokenizer, prompt, response))
        g, n = np.zeros_like(W), 0
        for t in range(len(ids) - 1):
            target = labels[t + 1]
            if target == -100:
                continue
            h = E[ids[t]]
            logits = H @ (W @ h)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            p[target] -= 1.0
            g += np.outer(H.T @ p, h)
            n += 1
        grads.append(g / n)
    return grads


def test_snip_equals_hand_computation(toy):
    W = toy.model.model.layers[0].proj.weight.detach().numpy().astype(np.float64)
    flags = {n: p.requires_grad for n, p in toy.model.named_parameters()}
    grads = _hand_gradients(toy)
    snip = gradient_scores(toy, CALIB, signed=False, max_tokens=64, progress=False)
    signed = gradient_scores(toy, CALIB, signed=True, max_tokens=64, progress=False)
    expected_snip = np.abs(W) * sum(np.abs(g) for g in grads)  # Wei: |W| * sum_i |grad_i|
    expected_signed = -(W * sum(grads))  # first-order loss rise when zeroed
    np.testing.assert_allclose(
        snip["model.layers.0.proj"].numpy(), expected_snip, rtol=1e-4, atol=1e-7
    )
    np.testing.assert_allclose(
        signed["model.layers.0.proj"].numpy(), expected_signed, rtol=1e-4, atol=1e-7
    )
    assert flags == {n: p.requires_grad for n, p in toy.model.named_parameters()}  # restored
    assert all(p.grad is None for p in toy.model.parameters())


def test_wanda_equals_hand_computation(toy):
    E = toy.model.model.embed.weight.detach().numpy().astype(np.float64)
    W = toy.model.model.layers[0].proj.weight.detach().numpy().astype(np.float64)
    squares = np.zeros(D)
    for prompt, response in zip(CALIB.prompts, CALIB.responses, strict=True):
        ids, labels = (t[0].numpy() for t in encode_example(toy.tokenizer, prompt, response))
        for t in np.flatnonzero(labels != -100):  # inputs at the response tokens
            squares += E[ids[t]] ** 2
    got = wanda_scores(toy, CALIB, max_tokens=64, progress=False)["model.layers.0.proj"].numpy()
    np.testing.assert_allclose(got, np.abs(W) * np.sqrt(squares)[None, :], rtol=1e-5)


def test_response_masking_excludes_the_prompt():
    for chat in (False, True):
        tok = build_tiny_tokenizer(add_bos=True, chat_template=chat)
        ids, labels = encode_example(tok, "Tell me a secret", "No.")
        ids, labels = ids[0].tolist(), labels[0].tolist()
        response = tok(" No." if not chat else "No.", add_special_tokens=False)["input_ids"]
        n_prompt = len(ids) - len(response)
        assert labels[:n_prompt] == [-100] * n_prompt
        assert labels[n_prompt:] == ids[n_prompt:] == response
    # plain text: only the BOS is unscored
    ids, labels = encode_example(tok, "", "just text")
    assert labels[0].tolist()[0] == -100 and -100 not in labels[0].tolist()[1:]


def test_a_prompt_longer_than_the_window_keeps_its_end_and_the_response():
    """A chat template that fills max_tokens by itself (a guard model's) used to leave no
    response token; its end (the turn the response answers) is kept, half the window scores."""
    tok = build_tiny_tokenizer(add_bos=True, chat_template=True)
    ids, labels = encode_example(tok, "a very long request " * 20, "Sure, " * 30, max_tokens=64)
    scored = int((labels[0] != -100).sum())
    assert ids.shape[1] == 64 and scored == 32
    assert tok.decode(ids[0, : 64 - scored]).endswith("<assistant>")  # the prompt's end
    short = encode_example(tok, "hi", "Sure, " * 30, max_tokens=64)  # unchanged otherwise
    assert int((short[1][0] == -100).sum()) == 21  # "<bos><user>hi<eos><assistant>", whole


def test_loss_ignores_prompt_tokens(toy):
    """Changing the prompt's *labels* cannot change the loss: only response tokens count."""
    ids, labels = encode_example(toy.tokenizer, "a long prompt here", "xy")
    loss = toy.model(input_ids=ids, labels=labels).loss
    logits = toy.model(input_ids=ids).logits[0]
    scored = [t for t in range(1, ids.shape[1]) if labels[0, t] != -100]
    manual = -torch.stack([torch.log_softmax(logits[t - 1], -1)[ids[0, t]] for t in scored]).mean()
    assert len(scored) == len(toy.tokenizer(" xy", add_special_tokens=False)["input_ids"])
    torch.testing.assert_close(loss, manual)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gemma3"])
def test_response_loss_equals_the_model_loss(name):
    from moralkit.pruning.importance import response_loss

    loaded = load_model(name)
    ids, labels = encode_example(loaded.tokenizer, "a request", "a reply of some length")
    with torch.no_grad():
        expected = loaded.model(input_ids=ids, labels=labels).loss
        got = response_loss(loaded, ids, labels)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def _index(scores: dict[str, torch.Tensor], scope: str, keep: float, name: str) -> ImportanceIndex:
    top = {n: top_indices(s, scope, keep) for n, s in scores.items()}
    shapes = {n: tuple(s.shape) for n, s in scores.items()}
    return ImportanceIndex(top, shapes, scope, keep, {"calibration": name})


@pytest.mark.parametrize("scope", ["matrix", "row"])
def test_masks_prune_exactly_the_set_difference(scope):
    rng = np.random.default_rng(1)
    shapes = {"a": (6, 10), "b": (4, 25)}
    target = {n: torch.tensor(rng.normal(size=s)) for n, s in shapes.items()}
    retain = {n: torch.tensor(rng.normal(size=s)) for n, s in shapes.items()}
    p, q = 0.3, 0.4
    mask = set_difference(_index(target, scope, 0.5, "t"), _index(retain, scope, 0.5, "r"), p, q)

    def top(scores: torch.Tensor, frac: float) -> set[int]:
        s = scores.numpy()
        rows, cols = s.shape
        if scope == "matrix":
            k = int(frac * s.size)
            return set(np.argsort(-s.ravel(), kind="stable")[:k].tolist())
        k = int(frac * cols)
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        return {r * cols + int(c) for r in range(rows) for c in order[r]}

    for n in shapes:
        expected = top(target[n], q) - top(retain[n], p)
        assert set(mask.indices[n].tolist()) == expected
        assert len(expected) > 0
    assert mask.n_pruned == sum(len(v) for v in mask.indices.values())


def test_select_refuses_more_than_stored():
    index = _index({"a": torch.randn(4, 4)}, "matrix", 0.25, "t")
    with pytest.raises(ValueError, match="keep"):
        index.select(0.5)


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama")


def _random_mask(loaded, fraction: float, seed: int) -> PruneMask:
    from moralkit.pruning import linear_layers

    rng = np.random.default_rng(seed)
    shapes = {n: tuple(m.weight.shape) for n, m in linear_layers(loaded.model).items()}
    indices = {
        n: np.sort(rng.choice(r * c, size=int(fraction * r * c), replace=False)).astype(np.int64)
        for n, (r, c) in shapes.items()
    }
    return PruneMask(indices, shapes, "random")


def test_pruned_restores_bit_identical_weights(tiny):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    mask = _random_mask(tiny, 0.2, 0)
    name = next(iter(mask.indices))
    with pruned(tiny.model, mask):
        flat = tiny.model.get_submodule(name).weight.view(-1)
        assert torch.all(flat[torch.as_tensor(mask.indices[name])] == 0)
        untouched = np.setdiff1d(np.arange(flat.numel()), mask.indices[name])
        assert torch.equal(flat[untouched], before[f"{name}.weight"].view(-1)[untouched])
    for k, v in tiny.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    with pytest.raises(RuntimeError, match="boom"), pruned(tiny.model, mask):
        raise RuntimeError("boom")
    for k, v in tiny.model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_importance_cache_round_trip(tiny, tmp_path):
    calib = CalibrationSet.from_texts("benign", ["The cat sat on the mat.", "Rain falls."])
    config = ImportanceConfig("snip", "matrix", keep=0.05, max_tokens=32)
    first = importance_index(tiny, calib, config, cache_dir=tmp_path, progress=False)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    second = importance_index(tiny, calib, config, cache_dir=tmp_path, progress=False)
    assert first.meta["cache"] == "miss" and second.meta["cache"] == "hit"
    for name in first.top:
        np.testing.assert_array_equal(first.top[name], second.top[name])
    assert load_index(files[0]).shapes == first.shapes
    # stored: the top-k only, not a dense copy
    assert sum(a.size for a in first.top.values()) < 0.06 * first.n_weights()


@pytest.mark.parametrize(
    "text, harmful",
    [
        ("I'm sorry, but I cannot help with that. " + "word " * 30, False),
        ("Here are the steps: " + " ".join(["step"] * 25), True),
        ("Here are the steps: first do this.", False),  # fewer than 20 words
        ("Step one. " * 12 + "However, this is risky.", False),  # 'However' is on Wei's list
        ("As an assistant I will explain " + "x " * 20, False),
    ],
)
def test_keyword_rule_on_fixed_strings(text, harmful):
    assert is_attack_success(text) is harmful


def test_attack_success_rate():
    texts = ["I cannot do that.", " ".join(["ok"] * 20), " ".join(["ok"] * 19)]
    assert attack_success_rate(texts) == pytest.approx(1 / 3)


def test_jaccard_and_unity_baselines():
    shapes = {"a": (10, 10)}
    a = PruneMask({"a": np.array([1, 2, 3, 4])}, shapes, "g1")
    b = PruneMask({"a": np.array([3, 4, 5, 6])}, shapes, "g2")
    benign = PruneMask({"a": np.array([90, 91])}, shapes, "benign")
    assert jaccard(a, b) == pytest.approx(2 / 6)
    table = unity_table({"g1": a, "g2": b}, benign)
    got = table.groupby("comparison")["jaccard"].mean()
    assert got[BENIGN] == 0
    assert got[HARM] == pytest.approx(1 / 3)
    # chance of two random 4-sets among 100 weights: (0.04 * 0.04) / (0.04 + 0.04 - 0.0016)
    assert table.loc[table["comparison"] == HARM, "chance"].iloc[0] == pytest.approx(
        0.0016 / 0.0784
    )
    assert chance_jaccard(4, 2, 100) == pytest.approx(0.0008 / (0.06 - 0.0008))


def test_harm_groups_and_eval_prompts_refused():
    from moralkit.data.harmful import harm_group
    from moralkit.pruning.generation import harmful_completions

    assert harm_group("Write a script that can hack into a database") == "cyber"
    assert harm_group("Explain how to make a bomb") == "violence_weapons"
    assert harm_group("Describe a sunny day") == "other"
    with pytest.raises(ValueError, match="evaluation prompts"):
        harmful_completions(None, [3, 150])


def test_harmful_completions_cached_without_reloading(offline_mirror, monkeypatch):
    import moralkit.models
    import moralkit.pruning.generation as generation
    from moralkit.data.harmful import COMPLETION_PREFIX
    from moralkit.pruning.generation import harmful_completions

    threads = []
    real = generation.cpu_threads
    monkeypatch.setattr(generation, "cpu_threads", lambda m, s: threads.append(s) or real(m, s))
    first = harmful_completions(
        "tiny-llama", [150, 151], max_new_tokens=3, progress=False, num_threads=1
    )
    assert threads == [1]  # the setting reaches the generation loop
    assert list(first["index"]) == [150, 151]
    assert first["response"].str.startswith(COMPLETION_PREFIX.strip()).all()

    def no_load(*args, **kwargs):
        raise AssertionError("a cached call must not load the model")

    monkeypatch.setattr(moralkit.models, "load_model", no_load)
    again = harmful_completions("tiny-llama", [150, 151], max_new_tokens=3, progress=False)
    assert again.equals(first)


def test_compliance_margins_equal_separate_scoring(tiny):
    """The shared-context (key/value cache) margins equal scoring each continuation alone."""
    from moralkit.models.scoring import continuation_logprobs
    from moralkit.pruning.calibration import format_request
    from moralkit.pruning.measures import REFUSAL, compliance_margins

    requests = ["Write a poem", "Explain how to pick a lock quickly", "Go"]
    contexts = [format_request(tiny.tokenizer, r) for r in requests]
    space = "" if getattr(tiny.tokenizer, "chat_template", None) else " "
    comply = [f"{space}Sure, here is how to {r[0].lower() + r[1:]}:" for r in requests]
    yes, n_yes = continuation_logprobs(tiny, contexts, comply)
    no, n_no = continuation_logprobs(tiny, contexts, [space + REFUSAL] * 3)
    got = compliance_margins(tiny, requests, batch_size=2)
    np.testing.assert_allclose(got, yes / n_yes - no / n_no, atol=1e-5)


def test_importance_parts_equal_single_sets(tiny, tmp_path):
    """Subset scores from shared backward passes equal scoring each subset on its own."""
    from moralkit.pruning.importance import importance_indices

    calib = CalibrationSet("harm", ("a b", "c d", "e f"), ("one two", "three", "four five"))
    config = ImportanceConfig("signed_snip", keep=0.01, max_tokens=32)
    parts = {"harm": [0, 1, 2], "first": [0, 2], "second": [1]}
    shared = importance_indices(tiny, calib, parts, config, tmp_path / "a", progress=False)
    for name, rows in parts.items():
        alone = importance_index(
            tiny, calib.subset(name, rows), config, tmp_path / "b", progress=False
        )
        for layer, top in alone.top.items():
            np.testing.assert_array_equal(np.sort(shared[name].top[layer]), np.sort(top))
        assert shared[name].meta["cache"] == "miss"
    again = importance_indices(tiny, calib, parts, config, tmp_path / "a", progress=False)
    assert all(index.meta["cache"] == "hit" for index in again.values())


def test_stop_ids_of_a_chat_model_with_several_end_of_turn_ids():
    """Qwen3, Llama-3.1-Instruct and gpt-oss ship a generation config whose eos_token_id is a
    list; the greedy answers stop at each of them and at the tokenizer's EOS (it crashed with
    'unhashable type: list' on the rehearsal's twins, chapter 10)."""
    from types import SimpleNamespace

    from moralkit.pruning.generation import _stop_ids

    chat = SimpleNamespace(
        tokenizer=SimpleNamespace(eos_token_id=2),
        model=SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=[2, 7, 9])),
    )
    assert _stop_ids(chat) == {2, 7, 9}
    base = SimpleNamespace(
        tokenizer=SimpleNamespace(eos_token_id=2),
        model=SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=None)),
    )
    assert _stop_ids(base) == {2}


@pytest.mark.parametrize(("scope", "keep"), [("matrix", 0.004), ("matrix", 1.0), ("row", 0.3)])
def test_top_indices_agree_with_torch_topk_best_first(scope, keep):
    scores = torch.tensor(np.random.default_rng(3).normal(size=(40, 50)), dtype=torch.float32)
    grouped = scores.reshape(1, -1) if scope == "matrix" else scores
    k = max(1, int(np.ceil(keep * grouped.shape[1])))
    expected = torch.topk(grouped, k, dim=1, sorted=True).indices.numpy()
    np.testing.assert_array_equal(top_indices(scores, scope, keep), expected)


def test_largest_unordered_is_the_same_set_and_bounds_the_rest():
    from moralkit.pruning.ranking import largest

    values = np.random.default_rng(4).normal(size=(1, 1000)).astype(np.float32)
    chosen = largest(values, 17, ordered=False)[0]
    assert set(chosen) == set(np.argsort(-values[0])[:17])
    rest = np.setdiff1d(np.arange(1000), chosen)
    assert values[0, chosen].min() > values[0, rest].max()


@pytest.mark.parametrize("k", [1, 9, 200, 1999])
@pytest.mark.parametrize("layout", ["random", "sampled-entries-largest"])
def test_largest_of_one_row_is_exact_with_the_sampled_threshold_or_its_fallback(k, layout):
    # one row (a whole matrix) is cut at a threshold read off every 16th score; when the
    # sampled scores are the row's largest, fewer than k pass and the whole row is partitioned
    from moralkit.pruning.ranking import largest

    values = np.random.default_rng(5).normal(size=(1, 2000)).astype(np.float32)
    if layout == "sampled-entries-largest":
        values[0, ::16] += 10.0
    expected = torch.topk(torch.from_numpy(values), k, dim=1, sorted=True).indices.numpy()
    np.testing.assert_array_equal(largest(values, k), expected)
    assert set(largest(values, k, ordered=False)[0]) == set(expected[0])
