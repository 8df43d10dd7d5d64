"""A dress rehearsal of the paper profile on tiny twins (book: Methods › Re-running, reproduce.md).

:func:`serve` makes the outside world of a paper run local: the 23 models' twins in a hub
cache, the synthetic Social-Chem-101 zip on a file server, a scripted judge endpoint;
``python -m moralkit.rehearsal run`` runs the whole workflow of the ``rehearsal`` profile in it.
"""

from moralkit.rehearsal.serve import Rehearsal, rehearsal_judge, serve

__all__ = ["Rehearsal", "rehearsal_judge", "serve"]
