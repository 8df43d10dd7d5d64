"""The Chapter API every notebook uses: parameters, data, activations, outputs, provenance.

A notebook's single ``parameters`` cell holds ``profile = "quick"`` and the chapter's parameters
set to ``None`` (None = take the profile's value). Then::

    from moralkit.chapter import Chapter
    ch = Chapter.start("02_categorical_indifference", globals())  # reads the parameters cell
    params = ch.params                   # validated: params["layers"] is a LayerSpec
    records = ch.records()               # moralkit.data.diagnostic_records(...), provenance kept
    for name in ch.models:
        acts = ch.activations(name, records)   # at ch.layers(name), profile settings
    result = categorical(acts, records, ch.config(CategoricalConfig))
    ch.save_result(result)               # every table as CSV + a download link
    ch.record_claims(result.claim())     # <out>/claims.json, judged by claims.yaml
    ch.save_figure(fig, "cosine_by_layer", data=df)  # PNG + CSV in <out>/figures/, shown once
    ch.finish()                          # provenance table + <out>/provenance.json

Parameters enter once, in :meth:`Chapter.start` (:mod:`~moralkit.chapter.parameters`: profile <
``moralkit run -p`` values < non-None values of the notebook's namespace), each validated into
its typed value (a layer parameter a :class:`~moralkit.layers.LayerSpec`, resolved once per
model by :meth:`Chapter.layers`). Chapter-specific parameters default to ``None`` in the cell,
with their values in ``moralkit/profiles.yaml``.

The package by job: :mod:`~moralkit.chapter.parameters` (start), :mod:`~moralkit.chapter.inputs`
(records, layers, activations, models; the :class:`Backends` tests replace),
:mod:`~moralkit.chapter.outputs` (output folder, tables, figures, claims),
:mod:`~moralkit.chapter.provenance` (what the run used and wrote) and
:mod:`~moralkit.chapter.facade` (:class:`Chapter`, which delegates to them).
"""

from moralkit.chapter.facade import Chapter
from moralkit.chapter.inputs import Backends

__all__ = ["Backends", "Chapter"]
