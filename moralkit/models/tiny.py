"""Tiny random models for tests: Llama-, Qwen2- and Gemma3-style, hidden size 32, built locally.

They exercise the same code paths as the real models (decoder-layer hooks, padding, BOS,
sliding-window attention, chat templates) in milliseconds and with no download. The tokenizer
is byte-level (every UTF-8 byte is one token, 256 + 4 special ids) and is built with the
``tokenizers`` library, wrapped in ``PreTrainedTokenizerFast``.
"""

from __future__ import annotations

import hashlib
import json

import torch
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from moralkit.models.registry import find_model_spec

TINY_VERSION = 1  # bump when the construction below changes (it is part of the weights hash)
TINY_WEIGHTS_SEED = 20260316  # the "pretrained" tiny weights; random_init uses the caller's seed
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
VOCAB_SIZE = len(SPECIAL_TOKENS) + 256

_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
)

_COMMON = dict(
    vocab_size=VOCAB_SIZE,
    intermediate_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
    initializer_range=0.2,  # larger than real models so that layers visibly change the stream
    pad_token_id=PAD_ID,
    bos_token_id=BOS_ID,
    eos_token_id=EOS_ID,
    tie_word_embeddings=False,
)


def tiny_config(name: str) -> PreTrainedConfig:
    """The transformers config of a tiny test model ("tiny-llama", "tiny-qwen2", "tiny-gemma3").

    Depth and width come from the model's registry entry, so the two cannot disagree.
    """
    spec = find_model_spec(name)
    if spec is None or not spec.is_test or spec.name != name:
        raise KeyError(
            f"unknown tiny model {name!r}; expected tiny-llama, tiny-qwen2 or tiny-gemma3"
        )
    common = {**_COMMON, "num_hidden_layers": spec.n_layers, "hidden_size": spec.hidden_size}
    if name == "tiny-llama":
        return LlamaConfig(**common)
    if name == "tiny-qwen2":
        return Qwen2Config(use_sliding_window=False, **common)
    return Gemma3TextConfig(
        head_dim=8,
        query_pre_attn_scalar=8,
        sliding_window=4,  # short, so that sliding layers really differ from full ones
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        **{**common, "num_key_value_heads": 1},
    )


_MODEL_CLASSES = {
    "tiny-llama": LlamaForCausalLM,
    "tiny-qwen2": Qwen2ForCausalLM,
    "tiny-gemma3": Gemma3ForCausalLM,
}


def byte_tokenizer(
    special_tokens: tuple[str, ...] = SPECIAL_TOKENS,
    bos: str | None = "<bos>",
    eos: str = "<eos>",
    pad: str | None = "<pad>",
    add_bos: bool = True,
    chat_template: str | None = None,
    words: tuple[str, ...] = (),
) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ``special_tokens`` first (ids 0..k-1), then one token per UTF-8
    byte, then one token per word of ``words`` (BPE merges, so " Yes" is one token as in real
    vocabularies). ``pad=None`` leaves the pad token unset, as Llama-3 tokenizers ship."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate(special_tokens)}
    vocab.update({ch: len(special_tokens) + i for i, ch in enumerate(alphabet)})
    merges = _word_merges(words, vocab)
    unk = "<unk>" if "<unk>" in vocab else None
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    if add_bos and bos is not None:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
        )
    named = {"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **{k: v for k, v in named.items() if v is not None}
    )
    extra = [t for t in special_tokens if t not in named.values()]
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": extra})
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def _word_merges(words: tuple[str, ...], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Left-to-right merges that make each word one token; new tokens are added to ``vocab``."""
    to_bytes = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    merges: list[tuple[str, str]] = []
    for word in words:
        (symbols, _), *_ = to_bytes.pre_tokenize_str(word)
        token = symbols[0]
        for symbol in symbols[1:]:
            if token + symbol not in vocab:
                merges.append((token, symbol))
                vocab[token + symbol] = len(vocab)
            token += symbol
    return merges


def build_tiny_tokenizer(add_bos: bool, chat_template: bool) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: one token per UTF-8 byte, optional BOS and chat template."""
    return byte_tokenizer(add_bos=add_bos, chat_template=_CHAT_TEMPLATE if chat_template else None)


def build_tiny_model(name: str, seed: int = TINY_WEIGHTS_SEED) -> PreTrainedModel:
    """A freshly initialised tiny model (fp32, eval mode); same ``seed`` → same weights."""
    config = tiny_config(name)
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = _MODEL_CLASSES[name](config)
    finally:
        torch.random.set_rng_state(generator_state)  # don't disturb the caller's RNG stream
    return model.eval()


def build_tiny_tokenizer_for(name: str) -> PreTrainedTokenizerFast:
    """The tokenizer of a tiny model: Llama and Gemma3 add BOS (like the real ones), Qwen2 not."""
    tiny_config(name)  # validates the name
    return build_tiny_tokenizer(add_bos=name != "tiny-qwen2", chat_template=name == "tiny-llama")


def tiny_weights_hash(name: str) -> str:
    """Identifies the tiny weights by what determines them: config, seed, construction version."""
    payload = json.dumps(
        {
            "name": name,
            "config": tiny_config(name).to_dict(),
            "seed": TINY_WEIGHTS_SEED,
            "version": TINY_VERSION,
            "torch": torch.__version__.split("+")[0],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()
