"""Models: the registry of the paper's 23 models plus offline and test models, and loading.

paper-methods §3.1 (model list), §2.1 (what extraction needs from a model).
"""

from moralkit.models.decoder import DecoderParts, find_decoder
from moralkit.models.loading import (
    LoadedModel,
    ModelIdentity,
    ModelNotAvailableError,
    load_model,
    model_identity,
    normalise_dtype,
)
from moralkit.models.registry import (
    MODEL_REGISTRY,
    OFFLINE_MODELS,
    PAPER_MODELS,
    TEST_MODELS,
    ModelSpec,
    OfflineSource,
    get_model_spec,
    registry_table,
)

__all__ = [
    "MODEL_REGISTRY",
    "OFFLINE_MODELS",
    "PAPER_MODELS",
    "TEST_MODELS",
    "DecoderParts",
    "LoadedModel",
    "ModelIdentity",
    "ModelNotAvailableError",
    "ModelSpec",
    "OfflineSource",
    "find_decoder",
    "get_model_spec",
    "load_model",
    "model_identity",
    "normalise_dtype",
    "registry_table",
]
