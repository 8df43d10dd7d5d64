"""SAE surgery (paper §4; book: Methods › SAE surgery, methods/sae.md).

One module per step: :mod:`~moralkit.sae.config` (presets), :mod:`~moralkit.sae.data`
(training texts and splits), :mod:`~moralkit.sae.train` (pretraining on sae-lens'
``StandardTrainingSAE``), :mod:`~moralkit.sae.identify` (moral features),
:mod:`~moralkit.sae.finetune` (selective fine-tuning), :mod:`~moralkit.sae.rediagnose`
(the four diagnostics before/after), :mod:`~moralkit.sae.store` (on-disk SAEs),
:mod:`~moralkit.sae.surgery` (all steps for one model) and :mod:`~moralkit.sae.recipe`
(chapter 07's recipe: a layer's inputs and the surgery, what every caller runs).

Getting the SAEs of chapter 07's settings (trained once, then loaded from the store)::

    from moralkit.sae.recipe import sae_surgery
    from moralkit.sae.surgery import surgery_config
    config = surgery_config("quick", seed=42, n_unlabelled=600)
    surgery = sae_surgery("smollm2-135m", ch.records(), ch.activations, [10], config)
    sae, centre = surgery.saes()["finetuned"][10]
    h_hat = centred_reconstruction(sae, torch.as_tensor(centre), h)   # = sae(h - centre) + centre
"""

from moralkit.sae.store import (
    STAGES,
    LoadedSAE,
    centred_reconstruction,
    load_sae_dir,
)

__all__ = [
    "STAGES",
    "LoadedSAE",
    "centred_reconstruction",
    "load_sae_dir",
]
