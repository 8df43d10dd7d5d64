"""Models: the registry of the paper's 23 models plus offline and test models, and loading.

(paper §3.1 model list, §2.1 what extraction needs from a model; book: Methods › Activations,
methods/activations.md.) :func:`model_depth` is the one source of a model's number of layers.
:mod:`moralkit.models.scoring` (LM head, log-likelihoods, perplexity) and
:mod:`moralkit.models.generation` (chat format, decoding) are the one scoring module and the one
decoding path of every chapter that runs a model's head (book: Methods › Evaluation).
"""

from moralkit.models.decoder import DecoderParts, find_decoder
from moralkit.models.hub import ModelNotAvailableError
from moralkit.models.identity import ModelIdentity, model_config, model_depth, model_identity
from moralkit.models.loading import LoadedModel, load_model, normalise_dtype
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
    "model_config",
    "model_depth",
    "model_identity",
    "normalise_dtype",
    "registry_table",
]
