"""Extraction correctness on tiny random models: no downloads, seconds.

(paper §2.1; book: Methods › Activations, methods/activations.md.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moralkit.activations import (
    build_prompts,
    extract_activations,
    last_token_index,
    official_last_token_index,
    pad_batch,
    plan_packed_batches,
    position_ids_from_mask,
)
from moralkit.models import find_decoder, load_model

TINY = ("tiny-llama", "tiny-qwen2", "tiny-gemma3")
TEXTS = [
    "helping a friend",
    "lying",
    "stealing bread from a starving family at night while they sleep",
    "x",
    "keeping a promise to a child",
    "betraying",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=TINY)
def tiny(request):
    return load_model(request.param)


def reference(loaded, text: str, template: str = "{action} is morally"):
    """One prompt, unpadded, through the full model with output_hidden_states."""
    ids = loaded.tokenizer(template.replace("{action}", text), return_tensors="pt")
    with torch.no_grad():
        return loaded.model(**ids, output_hidden_states=True).hidden_states


def test_matches_hidden_states_except_after_the_final_norm(tiny):
    acts = extract_activations(tiny, TEXTS, progress=False)
    last_layer = tiny.n_layers - 1
    for i, text in enumerate(TEXTS):
        states = reference(tiny, text)
        for layer in range(last_layer):  # hidden_states[i + 1] is the output of block i
            np.testing.assert_allclose(
                acts.get(layer, "mean")[i], states[layer + 1][0].mean(0).numpy(), atol=1e-5
            )
            np.testing.assert_allclose(
                acts.get(layer, "last")[i], states[layer + 1][0, -1].numpy(), atol=1e-5
            )
        # transformers 5 puts the *normed* stream in the last hidden_states entry; we don't.
        gap = np.abs(acts.get(last_layer, "mean")[i] - states[-1][0].mean(0).numpy()).max()
        assert gap > 1e-2


def test_hook_output_of_last_layer_is_pre_norm(tiny):
    acts = extract_activations(tiny, TEXTS[:2], layers=[tiny.n_layers - 1], progress=False)
    parts = find_decoder(tiny.model)
    seen = {}
    handle = parts.layers[-1].register_forward_hook(lambda m, a, o: seen.setdefault("h", o))
    try:
        ids = tiny.tokenizer("lying is morally", return_tensors="pt")
        with torch.no_grad():
            tiny.model(**ids)
    finally:
        handle.remove()
    hidden = seen["h"][0] if isinstance(seen["h"], tuple) else seen["h"]
    np.testing.assert_allclose(acts.get(tiny.n_layers - 1)[1], hidden[0].mean(0), atol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        {"packing": True, "batch_tokens": 64, "row_width": 32},
        {"packing": False, "padding_side": "right", "batch_tokens": 150},
        {"packing": False, "padding_side": "left", "batch_tokens": 150},
        {"packing": True, "batch_tokens": 1},  # one text per forward
    ],
)
def test_batched_layouts_equal_one_prompt_at_a_time(tiny, options):
    acts = extract_activations(tiny, TEXTS, progress=False, **options)
    for i, text in enumerate(TEXTS):
        states = reference(tiny, text)
        for layer in range(tiny.n_layers - 1):
            np.testing.assert_allclose(
                acts.get(layer, "mean")[i], states[layer + 1][0].mean(0), atol=1e-5
            )
            np.testing.assert_allclose(
                acts.get(layer, "last")[i], states[layer + 1][0, -1], atol=1e-5
            )


def test_left_and_right_padding_agree(tiny):
    left = extract_activations(tiny, TEXTS, packing=False, padding_side="left", progress=False)
    right = extract_activations(tiny, TEXTS, packing=False, padding_side="right", progress=False)
    for pooling in ("mean", "last"):
        np.testing.assert_allclose(left.arrays[pooling], right.arrays[pooling], atol=1e-5)
    assert "left" in left.meta["layout"] and "right" in right.meta["layout"]


def test_official_last_token_index_is_wrong_for_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(mask).tolist() == [4, 4, 4]
    assert official_last_token_index(mask).tolist() == [2, 4, 0]  # points into padding
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    assert last_token_index(right).tolist() == official_last_token_index(right).tolist() == [2, 0]


def test_official_index_gives_other_vectors_on_a_left_padded_batch():
    loaded = load_model("tiny-llama")
    seqs = [loaded.tokenizer(t + " is morally")["input_ids"] for t in ("lying", TEXTS[2])]
    ids, mask = pad_batch(seqs, loaded.tokenizer.pad_token_id, side="left")
    with torch.no_grad():
        states = loaded.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids_from_mask(mask),
            output_hidden_states=True,
        ).hidden_states[1]
    rows = torch.arange(2)
    ours = states[rows, last_token_index(mask)]
    official = states[rows, official_last_token_index(mask)]
    truth = reference(loaded, "lying")[1][0, -1]
    torch.testing.assert_close(ours[0], truth, atol=1e-5, rtol=0)
    assert (official[0] - truth).abs().max() > 1e-2  # the shorter text gets a padding vector
    torch.testing.assert_close(official[1], ours[1])  # the longest row is unaffected


def test_layer_out_of_range_names_layer_and_depth(tiny):
    depth = tiny.n_layers
    with pytest.raises(ValueError, match=rf"layers: .*\[{depth}\] out of range .*{depth}-layer"):
        extract_activations(tiny, TEXTS, layers=[0, depth], progress=False)
    with pytest.raises(ValueError, match=r"\[-1\] are negative"):
        extract_activations(tiny, TEXTS, layers=[-1], progress=False)


def test_layers_arrive_resolved_and_are_never_parsed(tiny):
    """Extraction takes resolved indices; a spec is resolved before (Chapter.layers), once."""
    from moralkit.layers import LayerSpec

    depth = tiny.n_layers
    last = extract_activations(tiny, TEXTS[:2], layers=[depth - 1], progress=False)
    assert last.layers == (depth - 1,)
    every = LayerSpec.parse("every:2").resolve(depth)
    assert extract_activations(tiny, TEXTS[:2], layers=every, progress=False).layers == every
    every_layer = extract_activations(tiny, TEXTS[:2], layers=None, progress=False)
    assert every_layer.layers == tuple(range(depth))
    np.testing.assert_array_equal(last.get(depth - 1), every_layer.get(depth - 1))
    for unparsed in ("0,-1", "every:2", LayerSpec.parse("all"), -1):
        with pytest.raises(TypeError, match="resolved layer indices"):
            extract_activations(tiny, TEXTS[:2], layers=unparsed, progress=False)
    import moralkit.activations as activations

    assert not hasattr(activations, "resolve_layers")  # one parser: moralkit.layers


def test_stops_after_the_deepest_requested_layer():
    loaded = load_model("tiny-llama")
    parts = find_decoder(loaded.model)
    calls = [0] * len(parts.layers)
    handles = [
        layer.register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, layer in enumerate(parts.layers)
    ]
    norm_calls = []
    handles.append(
        parts.text_model.norm.register_forward_hook(lambda m, a, o: norm_calls.append(1))
    )
    head_calls = []
    handles.append(loaded.model.lm_head.register_forward_hook(lambda m, a, o: head_calls.append(1)))
    try:
        acts = extract_activations(loaded, TEXTS, layers=[0], batch_tokens=10_000, progress=False)
    finally:
        for handle in handles:
            handle.remove()
    assert acts.layers == (0,)
    assert calls[0] >= 1 and calls[1] == 0 and calls[2] == 0
    assert norm_calls == [] and head_calls == []


def test_hooks_are_removed_even_after_an_error(monkeypatch):
    from moralkit.activations import hooks

    loaded = load_model("tiny-qwen2")
    parts = find_decoder(loaded.model)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(hooks, "pool_flat", broken)
    with pytest.raises(RuntimeError, match="boom"):
        extract_activations(loaded, TEXTS, progress=False)
    assert all(len(layer._forward_hooks) == 0 for layer in parts.layers)


def test_rows_follow_input_order_and_selected_layers():
    loaded = load_model("tiny-gemma3")
    acts = extract_activations(loaded, TEXTS, layers=[2, 0], poolings=("mean",), progress=False)
    flipped = extract_activations(
        loaded, TEXTS[::-1], layers=[0, 2], poolings="mean", progress=False
    )
    assert acts.layers == (0, 2) and acts.poolings == ("mean",)
    np.testing.assert_allclose(acts.get(2), flipped.get(2)[::-1], atol=1e-5)
    assert acts.meta["n_tokens"] == sum(
        len(loaded.tokenizer(t + " is morally")["input_ids"]) for t in TEXTS
    )


def test_template_and_system_prompt():
    loaded = load_model("tiny-llama")
    prompts = build_prompts(loaded.tokenizer, ["lying"], "Is {action} ok?", "Be good.")
    assert prompts == ["<bos><system>Be good.<eos><user>Is lying ok?<eos>"]
    plain = extract_activations(loaded, ["lying"], layers=[0], progress=False)
    chat = extract_activations(
        loaded, ["lying"], layers=[0], system_prompt="Be good.", progress=False
    )
    assert not np.allclose(plain.get(0), chat.get(0))
    # the rendered chat already holds BOS: it must not be added twice
    chat_ids = loaded.tokenizer(prompts[0], add_special_tokens=False)["input_ids"]
    assert chat_ids.count(loaded.tokenizer.bos_token_id) == 1
    with pytest.raises(ValueError, match="chat template"):
        extract_activations(load_model("tiny-qwen2"), ["lying"], system_prompt="Be good.")
    with pytest.raises(ValueError, match="placeholder"):
        extract_activations(loaded, ["lying"], template="no placeholder", progress=False)


def test_packing_falls_back_to_padding_when_the_model_ignores_position_resets(monkeypatch):
    import transformers.masking_utils as masking

    loaded = load_model("tiny-llama")
    monkeypatch.setattr(masking, "find_packed_sequence_indices", lambda position_ids: None)
    acts = extract_activations(loaded, TEXTS, progress=False)
    assert acts.meta["layout"].startswith("padded")
    states = reference(loaded, TEXTS[0])
    np.testing.assert_allclose(acts.get(0)[0], states[1][0].mean(0), atol=1e-5)


def test_packing_plan_respects_budget_and_covers_every_text():
    lengths = [5, 3, 9, 1, 4, 4, 7, 2, 8, 6]
    plan = plan_packed_batches(lengths, batch_tokens=20, row_width=10)
    seen = sorted(i for batch in plan for row in batch for i in row)
    assert seen == list(range(len(lengths)))
    for batch in plan:
        assert len(batch) <= 2  # 20 // 10 rows
        assert all(sum(lengths[i] for i in row) <= 10 for row in batch)


def test_thread_choice_is_one_of_two_and_restores_the_setting():
    from moralkit.activations import choose_num_threads

    loaded = load_model("tiny-llama")
    torch.set_num_threads(2)
    try:
        chosen = choose_num_threads(find_decoder(loaded.model), loaded.hidden_size, 64)
        assert chosen in (1, 2)
        assert torch.get_num_threads() == 2
        acts = extract_activations(loaded, TEXTS[:2], layers=[0], num_threads=1, progress=False)
        assert acts.meta["torch_threads"] == 1 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize("bad", ["one text", b"bytes", ["a", None], ["a", 3], None])
def test_texts_must_be_a_list_of_strings(bad):
    """A bare str used to be iterated character by character; None became the text 'None'."""
    loaded = load_model("tiny-qwen2")
    with pytest.raises(TypeError, match="texts"):
        extract_activations(loaded, bad, layers=[0], progress=False)


def test_a_none_text_is_named_by_its_position():
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        extract_activations(load_model("tiny-qwen2"), ["a", None], progress=False)


def test_long_texts_are_truncated_counted_and_warned_about():
    loaded = load_model("tiny-llama")
    long_text = " ".join(["word"] * 10_000)  # 50k byte tokens; the tiny model has 512 positions
    with pytest.warns(UserWarning, match="1 of 2 prompts .*truncated"):
        acts = extract_activations(loaded, ["short", long_text], layers=[0], progress=False)
    assert acts.meta["n_truncated"] == 1 and acts.meta["max_tokens"] == loaded.max_positions
    assert np.isfinite(acts.get(0)).all()
    alone = extract_activations(loaded, ["short"], layers=[0], progress=False)
    np.testing.assert_allclose(acts.get(0)[0], alone.get(0)[0], atol=1e-5)


def test_truncation_keeps_the_first_max_tokens_tokens():
    loaded = load_model("tiny-llama")  # byte-level tokens, BOS first
    with pytest.warns(UserWarning, match="truncated"):
        cut = extract_activations(
            loaded, ["abcdefghijkl"], layers=[1], max_tokens=8, progress=False
        )
    head = extract_activations(loaded, ["abcdefg"], layers=[1], template="{action}", progress=False)
    assert cut.meta["n_tokens"] == 8 and cut.meta["n_truncated"] == 1
    for pooling in ("mean", "last"):
        np.testing.assert_allclose(cut.get(1, pooling), head.get(1, pooling), atol=1e-5)
    with pytest.raises(ValueError, match="max_tokens"):
        extract_activations(loaded, ["a"], max_tokens=0, progress=False)
