"""Tiny random-weight twins of the paper's 23 models: same architecture class, same quirks.

(paper §3.1; book: Methods › Re-running, reproduce.md.) A twin keeps what makes its family's
code paths differ: the model class (Qwen3 dense, Qwen3-MoE, Llama-3.1 with llama3 RoPE
scaling, Llama-4's multimodal ``Llama4ForConditionalGeneration`` wrapper with interleaved
NoPE and chunked attention, gpt-oss's alternating sliding/full attention with attention
sinks and YaRN), tied or untied embeddings, bfloat16 weights, explicit ``head_dim``, a
``generation_config.json`` that samples by default, the special tokens, BOS behaviour, pad
token (none for Llama-3.1) and a chat template shaped like the family's (Qwen3's thinking
switch, Llama-3.1's knowledge-date system header, Llama Guard's alternating-roles check,
gpt-oss's harmony format). Only sizes shrink: width :data:`TWIN_WIDTH`, depth
:func:`twin_depth`, few experts, a byte vocabulary. Weights are drawn from a seed derived
from the model's name, so the same twin is rebuilt byte for byte (never committed).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig, PreTrainedConfig, PreTrainedModel

from moralkit.models.registry import PAPER_MODELS, ModelSpec, get_model_spec
from moralkit.models.tiny import byte_tokenizer

TWIN_VERSION = 3  # bump when a construction below changes
TWIN_WIDTH = 32
TWIN_HEADS, TWIN_KV_HEADS, TWIN_HEAD_DIM = 4, 2, 16  # head_dim x heads != width, as in Qwen3

# Chat templates shaped like the families' own (same markers, system handling and checks);
# text goes through {{ }} expressions so that no whitespace control eats a newline.
_QWEN_TEMPLATE = (
    "{%- for m in messages %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
_LLAMA3_TEMPLATE = (
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}"
    "{%- set system = messages[0]['content'] %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nCutting Knowledge Date: December 2023"
    "\\nToday Date: 26 Jul 2024\\n\\n' + system + '<|eot_id|>' }}"
    "{%- for m in messages %}{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n'"
    " + m['content'] + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
_LLAMA_GUARD_TEMPLATE = (
    "{%- for m in messages %}{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif %}{%- endfor %}"
    "{{- bos_token + '<|start_header_id|>user<|end_header_id|>\\n\\nTask: Check if there is "
    "unsafe content in the conversation.\\n\\n<BEGIN CONVERSATION>\\n\\n' }}"
    "{%- for m in messages %}{{- ('User' if m['role'] == 'user' else 'Agent') + ': '"
    " + m['content'] + '\\n\\n' }}{%- endfor %}"
    "{{- '<END CONVERSATION>\\n\\nProvide your safety assessment.<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
)
_LLAMA4_TEMPLATE = (
    "{{- bos_token }}{%- for m in messages %}"
    "{{- '<|header_start|>' + m['role'] + '<|header_end|>\\n\\n' }}"
    "{%- if m['content'] is string %}{{- m['content'] }}{%- else %}"
    "{%- for part in m['content'] %}{{- part['text'] }}{%- endfor %}{%- endif %}"
    "{{- '<|eot|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|header_start|>assistant<|header_end|>\\n\\n' }}"
    "{%- endif %}"
)
_HARMONY_TEMPLATE = (
    "{{- '<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI."
    "\\nReasoning: medium\\n\\n# Valid channels: analysis, commentary, final.<|end|>' }}"
    "{%- for m in messages %}{%- if m['role'] == 'system' %}"
    "{{- '<|start|>developer<|message|># Instructions\\n\\n' + m['content'] + '<|end|>' }}"
    "{%- else %}{{- '<|start|>' + m['role'] + '<|message|>' + m['content'] + '<|end|>' }}"
    "{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start|>assistant' }}"
    "{%- endif %}"
)


@dataclass(frozen=True)
class TokenQuirks:
    """A family's special tokens (first ids), which are BOS/EOS/pad, BOS added or not."""

    specials: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str | None
    add_bos: bool
    stop: tuple[str, ...] = ()  # generation_config eos ids beyond ``eos`` (chat models)

    def ids(self, *tokens: str) -> list[int]:
        return [self.specials.index(t) for t in tokens]


_QWEN = TokenQuirks(
    ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"),
    bos=None, eos="<|im_end|>", pad="<|endoftext|>", add_bos=False, stop=("<|endoftext|>",),
)  # fmt: skip
_QWEN_BASE = TokenQuirks(_QWEN.specials, None, "<|endoftext|>", "<|endoftext|>", False)
_LLAMA3 = TokenQuirks(
    ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
     "<|eot_id|>", "<|eom_id|>"),
    bos="<|begin_of_text|>", eos="<|end_of_text|>", pad=None, add_bos=True,
    stop=("<|eom_id|>", "<|eot_id|>"),
)  # fmt: skip
_LLAMA4 = TokenQuirks(
    ("<|begin_of_text|>", "<|end_of_text|>", "<|header_start|>", "<|header_end|>", "<|eot|>",
     "<|finetune_right_pad|>"),
    bos="<|begin_of_text|>", eos="<|eot|>", pad="<|finetune_right_pad|>", add_bos=True,
    stop=("<|end_of_text|>",),
)  # fmt: skip
_HARMONY = TokenQuirks(
    ("<|endoftext|>", "<|start|>", "<|message|>", "<|channel|>", "<|end|>", "<|return|>",
     "<|call|>"),
    bos=None, eos="<|return|>", pad="<|endoftext|>", add_bos=False, stop=("<|call|>",),
)  # fmt: skip


#: words the chapters compare as single answer tokens; real vocabularies hold each as one token
ANSWER_WORDS = (" Yes", " No", "Yes", "No", " yes", " no", " A", " B", " C", " D")


def twin_depth(spec: ModelSpec) -> int:
    """Decoder layers of a twin: about one per 16 of the real model's, at least 2 (so layer
    patterns such as sliding/full or NoPE/RoPE alternate)."""
    return max(2, round(spec.n_layers / 16))


def _token_quirks(spec: ModelSpec) -> tuple[TokenQuirks, str | None]:
    """The family's tokens and chat template (None for base models, as the registry says)."""
    if spec.family == "Qwen3":
        return (_QWEN if spec.chat else _QWEN_BASE), (_QWEN_TEMPLATE if spec.chat else None)
    if spec.family == "Llama-3.1":
        template = _LLAMA_GUARD_TEMPLATE if spec.group == "Guard" else _LLAMA3_TEMPLATE
        return _LLAMA3, (template if spec.chat else None)
    if spec.family == "Llama-4":
        return _LLAMA4, (_LLAMA4_TEMPLATE if spec.chat else None)
    if spec.family == "gpt-oss":
        return _HARMONY, _HARMONY_TEMPLATE
    raise KeyError(f"no twin for family {spec.family!r} ({spec.name})")


def _vocab_size(tokens: TokenQuirks) -> int:
    n = len(tokens.specials) + 256 + 2 * len(ANSWER_WORDS)  # merges add at most 2 per word
    return -(-n // 64) * 64  # rounded up, as real vocabularies are padded


def _common(spec: ModelSpec, tokens: TokenQuirks, depth: int) -> dict:
    bos = tokens.ids(tokens.bos)[0] if tokens.bos else None
    return dict(
        vocab_size=_vocab_size(tokens),
        hidden_size=TWIN_WIDTH,
        intermediate_size=64,
        num_hidden_layers=depth,
        num_attention_heads=TWIN_HEADS,
        num_key_value_heads=TWIN_KV_HEADS,
        head_dim=TWIN_HEAD_DIM,
        initializer_range=0.2,  # as moralkit.models.tiny: layers visibly change the stream
        bos_token_id=bos,
        eos_token_id=tokens.ids(tokens.eos)[0],
        pad_token_id=tokens.ids(tokens.pad)[0] if tokens.pad else None,
        dtype="bfloat16",
    )


def twin_config(name: str) -> PreTrainedConfig:
    """The transformers config of the twin of paper model ``name`` (registry name or hub id)."""
    spec = get_model_spec(name)
    if spec.name not in PAPER_MODELS:
        raise KeyError(f"{name!r} is not one of the paper's models; twins exist for those only")
    tokens, _ = _token_quirks(spec)
    depth = twin_depth(spec)
    common = _common(spec, tokens, depth)
    if spec.family == "Qwen3" and spec.architecture == "MoE":
        from transformers import Qwen3MoeConfig

        return Qwen3MoeConfig(
            **common, num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16,
            decoder_sparse_step=1, mlp_only_layers=[], norm_topk_prob=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            max_position_embeddings=40960, architectures=["Qwen3MoeForCausalLM"],
        )  # fmt: skip
    if spec.family == "Qwen3":
        from transformers import Qwen3Config

        return Qwen3Config(
            **common, tie_word_embeddings=spec.params_b < 5,  # 0.6B and 4B tie, 8B+ do not
            rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            max_position_embeddings=40960, architectures=["Qwen3ForCausalLM"],
        )  # fmt: skip
    if spec.family == "Llama-3.1":
        from transformers import LlamaConfig

        rope = {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}  # fmt: skip
        return LlamaConfig(
            **common, rope_parameters=rope, max_position_embeddings=131072,
            architectures=["LlamaForCausalLM"],
        )  # fmt: skip
    if spec.family == "Llama-4":
        return _llama4_config(common, depth)
    return _gpt_oss_config(spec, common, depth)


def _llama4_config(common: dict, depth: int) -> PreTrainedConfig:
    from transformers import Llama4Config

    text = {
        **{k: v for k, v in common.items() if k != "dtype"},
        "intermediate_size_mlp": 64,
        "num_local_experts": 4,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "no_rope_layers": [int((i + 1) % 4 != 0) for i in range(depth)][:-1] + [0],  # last NoPE
        "attention_chunk_size": 8,  # short, so that chunked attention really chunks
        "use_qk_norm": True,
        "attn_temperature_tuning": True,
        "rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 16.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 1.0,
                            "original_max_position_embeddings": 8192},
        "max_position_embeddings": 10485760,
    }  # fmt: skip
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 4, "image_size": 28, "patch_size": 14,
              "vision_output_dim": 32, "projector_input_dim": 32,
              "projector_output_dim": 32}  # fmt: skip
    return Llama4Config(
        text_config=text,
        vision_config=vision,
        boi_token_index=common["vocab_size"] - 2,
        eoi_token_index=common["vocab_size"] - 1,
        image_token_index=common["vocab_size"] - 3,
        tie_word_embeddings=False,
        dtype="bfloat16",
        architectures=["Llama4ForConditionalGeneration"],
    )


def _gpt_oss_config(spec: ModelSpec, common: dict, depth: int) -> PreTrainedConfig:
    from transformers import GptOssConfig

    rope = {"rope_type": "yarn", "rope_theta": 150000.0, "factor": 32.0, "beta_fast": 32.0,
            "beta_slow": 1.0, "truncate": False,
            "original_max_position_embeddings": 4096}  # fmt: skip
    return GptOssConfig(
        **{**common, "intermediate_size": 32},
        num_local_experts=8 if spec.params_b > 100 else 4,  # 128 and 32 in the real ones
        num_experts_per_tok=2,
        sliding_window=8,  # short, so that sliding layers really differ from full ones
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(depth)],
        attention_bias=True,
        rope_parameters=rope,
        max_position_embeddings=131072,
        architectures=["GptOssForCausalLM"],
    )


def _model_class(config: PreTrainedConfig) -> type[PreTrainedModel]:
    import transformers

    return getattr(transformers, config.architectures[0])


def _generation_config(spec: ModelSpec, tokens: TokenQuirks) -> GenerationConfig:
    """Chat models sample by default (their hub generation_config.json does), with several
    end-of-turn ids; base models only stop at EOS."""
    eos = tokens.ids(tokens.eos, *tokens.stop) if spec.chat else tokens.ids(tokens.eos)
    settings = {"do_sample": True, "temperature": 0.6, "top_p": 0.95} if spec.chat else {}
    bos = tokens.ids(tokens.bos)[0] if tokens.bos else None
    pad = tokens.ids(tokens.pad)[0] if tokens.pad else None
    return GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, **settings)


def twin_seed(name: str) -> int:
    """The weights seed of a twin: from its registry name, so every build draws the same."""
    return int(hashlib.sha256(f"twin:{name}:{TWIN_VERSION}".encode()).hexdigest()[:8], 16)


def twin_model(name: str) -> PreTrainedModel:
    """The twin of ``name`` in memory, with the bf16 weights :func:`write_twin` saves (the
    reference a checkpoint loaded from the hub cache is pinned to)."""
    spec = get_model_spec(name)
    config = twin_config(spec.name)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(twin_seed(spec.name))
        model = _model_class(config)(config)
    finally:
        torch.random.set_rng_state(state)
    for param in model.parameters():  # parameters only: Llama-4's vision RoPE is complex
        param.data = param.data.to(torch.bfloat16)
    model.generation_config = _generation_config(spec, _token_quirks(spec)[0])
    return model.eval()


def write_twin(name: str, folder: Path) -> Path:
    """Save the twin of ``name`` as a hub checkpoint would look: config, bf16 safetensors,
    generation config, tokenizer files. Deterministic: the same bytes on every build."""
    spec = get_model_spec(name)
    tokens, template = _token_quirks(spec)
    model = twin_model(spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer = byte_tokenizer(
        tokens.specials,
        tokens.bos,
        tokens.eos,
        tokens.pad,
        tokens.add_bos,
        template,
        ANSWER_WORDS,
    )
    tokenizer.save_pretrained(folder)
    return folder


def twin_commit(name: str) -> str:
    """A 40-hex commit id for the twin's snapshot, from what determines its files."""
    spec = get_model_spec(name)
    payload = json.dumps(
        {"name": spec.name, "config": twin_config(spec.name).to_json_string(),
         "version": TWIN_VERSION, "torch": torch.__version__.split("+")[0]},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha1(payload.encode()).hexdigest()
