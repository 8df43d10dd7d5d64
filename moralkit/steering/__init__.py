"""Inference-time SAE steering and cached generation (paper §4.5; book: Methods › Steering,
methods/steering.md)."""

from moralkit.models.generation import DecodingConfig
from moralkit.steering.generation import (
    PAPER_BASELINE_DECODING,
    PAPER_STEERED_DECODING,
    PAPER_SYSTEM_PROMPT,
    generate_responses,
)
from moralkit.steering.hook import (
    STEERING_STAGES,
    SteeringConfig,
    SteeringHook,
    SteeringSAE,
    active_hook_count,
    steer,
    steering,
    steering_arms,
)
from moralkit.steering.saes import load_steering_saes, steering_saes

__all__ = [
    "PAPER_BASELINE_DECODING",
    "PAPER_STEERED_DECODING",
    "PAPER_SYSTEM_PROMPT",
    "STEERING_STAGES",
    "DecodingConfig",
    "SteeringConfig",
    "SteeringHook",
    "SteeringSAE",
    "active_hook_count",
    "generate_responses",
    "steer",
    "steering",
    "steering_arms",
    "load_steering_saes",
    "steering_saes",
]
