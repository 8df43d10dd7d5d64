"""SAE surgery (paper §4; book: Methods › SAE surgery, methods/sae.md).

One module per step: :mod:`~moralkit.sae.config` (presets), :mod:`~moralkit.sae.data`
(training texts and splits), :mod:`~moralkit.sae.train` (pretraining on sae-lens'
``StandardTrainingSAE``), :mod:`~moralkit.sae.identify` (moral features),
:mod:`~moralkit.sae.finetune` (selective fine-tuning), :mod:`~moralkit.sae.rediagnose`
(the four diagnostics before/after), :mod:`~moralkit.sae.store` (on-disk SAEs) and
:mod:`~moralkit.sae.pipeline` (all steps for one model).

Loading a trained SAE (e.g. for steering)::

    from moralkit.sae import load_trained
    sae, centre, features = load_trained("smollm2-135m", 10, kind="finetuned", preset="quick")
    h_hat = centred_reconstruction(sae, centre, h)   # = sae(h - centre) + centre
"""

from moralkit.sae.store import (
    KINDS,
    LoadedSAE,
    centred_reconstruction,
    find_trained,
    load_sae_dir,
    load_trained,
)

__all__ = [
    "KINDS",
    "LoadedSAE",
    "centred_reconstruction",
    "find_trained",
    "load_sae_dir",
    "load_trained",
]
