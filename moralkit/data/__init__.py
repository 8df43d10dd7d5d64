"""Moral ground truth: fetching, parsing and sampling the records.

(paper §1; book: Methods › Data, methods/data.md; Methods › Ground truths,
methods/ground-truths.md.) Ground truths (:data:`GROUND_TRUTHS`):

- ``"socialchem"``: the official Social-Chem-101 v1.0 zip (355,922 rows), paper-exact
  cleaning, vectors, split and explode (paper §1.1-1.4). Needs the file in the
  mirror or internet access.
- ``"socialchem-subset"``: the same pipeline on two real filtered subsets of Social-Chem-101
  (good and okay judgments only, so no vice records). Offline.
- ``"moralstrength"``: the MoralStrength lexicon mapped into the same schema, both poles
  (see :mod:`moralkit.data.moral_strength`). Offline; the quick profile's default.
- ``"emfd"``: the extended Moral Foundations Dictionary (:mod:`moralkit.data.emfd`). Offline.
- ``"mfd2"`` and ``"mfd"``: MFD 2.0 and the original MFD (:mod:`moralkit.data.dictionaries`);
  no typicality, every record a prototype (``records.has_typicality`` is False). Offline.

Prototypes follow the paper for Social-Chem and a documented rule for lexicons
(:mod:`moralkit.data.prototypes`). Files come through :func:`fetch` only:
``$MORALKIT_DATA_MIRROR`` (a local folder) first, then a pooch download cache in
``$MORALKIT_CACHE`` (default ``~/.cache/moralkit``). A bad file (empty, header only, not
UTF-8) raises :class:`DataFileError` naming it.
"""

from moralkit.data.fetch import (
    CorruptCacheError,
    DataChecksumError,
    DataFileNotFoundError,
    fetch,
    file_checksums,
)
from moralkit.data.ground_truth import (
    GROUND_TRUTHS,
    compare_with_paper,
    diagnostic_records,
    load_records,
    paper_bucket_counts,
)
from moralkit.data.manifest import DataFile, Manifest, load_manifest
from moralkit.data.moral_vectors import split_by_id
from moralkit.data.reading import DataFileError
from moralkit.data.subset import stratified_subset

__all__ = [
    "GROUND_TRUTHS",
    "CorruptCacheError",
    "DataChecksumError",
    "DataFile",
    "DataFileError",
    "DataFileNotFoundError",
    "Manifest",
    "compare_with_paper",
    "diagnostic_records",
    "fetch",
    "file_checksums",
    "load_manifest",
    "load_records",
    "paper_bucket_counts",
    "split_by_id",
    "stratified_subset",
]
