"""The paper's diagnostics of moral indifference (paper-methods §2.2–2.5, §3.2).

One module per diagnostic; each takes an :class:`~moralkit.activation_set.ActivationSet`
aligned with a :class:`~moralkit.records.MoralRecords` and returns tidy pandas tables.
:mod:`moralkit.diagnostics.centring` holds the per-layer centring and category centres that
all of them share.
"""
