"""The SAEs steering uses: chapter 07's pretrained and fine-tuned SAEs, per layer.

(paper §4.2–4.5; book: Methods › Steering, methods/steering.md.) Steering itself only needs a
sae-lens SAE, its centre and (optionally) feature ids; this module fetches them from the SAE
store of :mod:`moralkit.sae` and, when a layer was never trained, trains it through that
package's pipeline (``train_missing``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from moralkit.steering.hook import SteeringSAE

STEERING_KINDS = ("pretrained", "finetuned")


def load_steering_saes(
    model: str,
    layers: Sequence[int],
    preset: str = "quick",
    train_missing: Callable[[list[int]], object] | None = None,
    device: str = "cpu",
    cache_dir: str | None = None,
) -> dict[tuple[str, int], SteeringSAE]:
    """``{(kind, layer): SteeringSAE}`` for both kinds and every layer.

    Layers without a trained SAE are passed to ``train_missing`` (which should train and store
    them, e.g. with :func:`moralkit.sae.pipeline.run_surgery`) and loaded again; without it a
    missing SAE raises ``FileNotFoundError`` naming it.
    """
    from moralkit.sae import load_trained

    def attempt() -> tuple[dict, list[int]]:
        found, missing = {}, []
        for layer in layers:
            try:
                for kind in STEERING_KINDS:
                    sae, centre, features = load_trained(
                        model, layer, kind, preset, cache_dir=cache_dir, device=device
                    )
                    selected = tuple(int(i) for i in features) if len(features) else None
                    found[(kind, int(layer))] = SteeringSAE(
                        sae.eval(), torch.as_tensor(centre).float(), selected
                    )
            except FileNotFoundError:
                missing.append(int(layer))
        return found, missing

    found, missing = attempt()
    if missing and train_missing is not None:
        train_missing(missing)
        found, missing = attempt()
    if missing:
        raise FileNotFoundError(
            f"no trained SAEs for {model} layer(s) {missing} (preset {preset!r}); run chapter 07 "
            "or pass train_missing"
        )
    return found


def surgery_trainer(chapter, model: str, preset: str) -> Callable[[list[int]], object]:
    """A ``train_missing`` that runs chapter 07's surgery (its preset settings) on the
    chapter's records. Chapter 07 also adds unlabelled texts to pretraining; run it first to
    steer with exactly its SAEs."""

    def train(layers: list[int]) -> object:
        from moralkit.sae.pipeline import run_surgery, surgery_config

        records = chapter.records()
        acts = chapter.activations(model, records, layers=list(layers))
        config = surgery_config(preset, seed=int(chapter.params.get("seed") or 0))
        return run_surgery(model, acts, records, layers=list(layers), config=config)

    return train
