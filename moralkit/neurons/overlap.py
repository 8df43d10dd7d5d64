"""How much two neuron sets overlap, against what random sets of the same size would share.

Two baselines: ``expected_random`` for sets drawn uniformly from all L x W gate neurons
(``n_a * n_b / N``, with a hypergeometric p-value from scipy), and ``expected_layer_matched``
for random sets with the same count per layer (``sum_l n_a,l * n_b,l / W``), which discounts
overlap that only comes from both sets favouring the same layers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import hypergeom


def neuron_keys(table: pd.DataFrame, width: int) -> np.ndarray:
    """Flat (layer * width + neuron) ids of a neuron table."""
    return table["layer"].to_numpy(np.int64) * width + table["neuron"].to_numpy(np.int64)


def layer_counts(table: pd.DataFrame, n_layers: int) -> np.ndarray:
    """Number of neurons per layer (length ``n_layers``)."""
    return np.bincount(table["layer"].to_numpy(int), minlength=n_layers)[:n_layers]


def overlap_stats(a: pd.DataFrame, b: pd.DataFrame, n_layers: int, width: int) -> dict[str, float]:
    """Shared neurons of ``a`` and ``b``, Jaccard index, both random baselines and a p-value."""
    keys_a, keys_b = neuron_keys(a, width), neuron_keys(b, width)
    shared = int(np.intersect1d(keys_a, keys_b).size)
    n_a, n_b, total = len(keys_a), len(keys_b), n_layers * width
    union = n_a + n_b - shared
    expected = n_a * n_b / total
    matched = float(layer_counts(a, n_layers) @ layer_counts(b, n_layers)) / width
    return {
        "n_a": n_a,
        "n_b": n_b,
        "shared": shared,
        "jaccard": shared / union if union else np.nan,
        "expected_random": expected,
        "expected_layer_matched": matched,
        "ratio_random": shared / expected if expected else np.nan,
        "ratio_layer_matched": shared / matched if matched else np.nan,
        "p_value": float(hypergeom.sf(shared - 1, total, n_a, n_b)) if n_a and n_b else np.nan,
    }
