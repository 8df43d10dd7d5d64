"""SAE surgery (paper §4; book: Methods › SAE surgery, methods/sae.md).

One module per step: :mod:`~moralkit.sae.config` (presets), :mod:`~moralkit.sae.data`
(the cross-fitting folds; the unlabelled pool is :mod:`moralkit.data.unlabelled`),
:mod:`~moralkit.sae.train` (pretraining on
sae-lens' ``StandardTrainingSAE``) with :mod:`~moralkit.sae.loss` (the loss) and
:mod:`~moralkit.sae.resample` (dead latents),
:mod:`~moralkit.sae.metrics` (reconstruction and the gate), :mod:`~moralkit.sae.identify` (moral
features), :mod:`~moralkit.sae.finetune` (selective fine-tuning), :mod:`~moralkit.sae.effects`
and :mod:`~moralkit.sae.rediagnose` (the diagnostics before/after, paired effects),
:mod:`~moralkit.sae.store` (on-disk SAEs), :mod:`~moralkit.sae.surgery` (all steps for one
model, seed by seed and fold by fold), :mod:`~moralkit.sae.tables` (its tables) and
:mod:`~moralkit.sae.recipe` (chapter 07's recipe: the inputs and the surgery, what every
caller runs).

Getting the SAEs of chapter 07's settings (trained once, then loaded from the store)::

    from moralkit.sae.recipe import sae_surgery
    from moralkit.sae.surgery import surgery_config
    config = surgery_config("quick", seed=42, n_unlabelled=8400, n_seeds=3)
    surgery = sae_surgery("smollm2-135m", ch.records(), ch.activations, [8], config)
    s = surgery.surgery(8)                        # the first seed's layer-8 SAEs
    h_pre = s.apply(h, "pretrained", "reconstruction")   # sae(h - centre) + centre
    h_ft = s.apply(h, "finetuned", "reconstruction")     # each record by its fold's SAE
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
