"""Moral ground truth: fetching, parsing and sampling the records (paper-methods §1).

Ground truths (:data:`GROUND_TRUTHS`):

- ``"socialchem"``: the official Social-Chem-101 v1.0 zip (355,922 rows), paper-exact
  cleaning, vectors, split and explode (paper-methods §1.1-1.4). Needs the file in the
  mirror or internet access.
- ``"socialchem-subset"``: the same pipeline on two real filtered subsets of Social-Chem-101
  (good and okay judgments only, so no vice records). Offline.
- ``"moralstrength"``: the MoralStrength lexicon mapped into the same schema, both poles
  (see :mod:`moralkit.data.moral_strength`). Offline; the quick profile's default.

Files come through :func:`fetch` only: ``$MORALKIT_DATA_MIRROR`` (a local folder) first,
then a pooch download cache in ``$MORALKIT_CACHE`` (default ``~/.cache/moralkit``).
"""

from moralkit.data.fetch import (
    DataChecksumError,
    DataFileNotFoundError,
    default_cache_dir,
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
from moralkit.data.subset import stratified_subset

__all__ = [
    "GROUND_TRUTHS",
    "DataChecksumError",
    "DataFile",
    "DataFileNotFoundError",
    "Manifest",
    "compare_with_paper",
    "default_cache_dir",
    "diagnostic_records",
    "fetch",
    "file_checksums",
    "load_manifest",
    "load_records",
    "paper_bucket_counts",
    "split_by_id",
    "stratified_subset",
]
