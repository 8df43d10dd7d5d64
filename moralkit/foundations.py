"""The ten moral categories: five Moral Foundations x two poles (paper §1.2; book: Methods › Data).

The dimension order is the paper's and never changes: foundation ``k`` owns indices
``(2k, 2k+1)``, virtue first.
"""

from __future__ import annotations

FOUNDATIONS: tuple[str, ...] = ("care", "fairness", "loyalty", "authority", "sanctity")
VICES: tuple[str, ...] = ("harm", "cheating", "betrayal", "subversion", "degradation")
DIMENSIONS: tuple[str, ...] = tuple(
    d for pair in zip(FOUNDATIONS, VICES, strict=True) for d in pair
)
POLES: tuple[str, ...] = ("virtue", "vice", "neutral")
# Social-Chem-101 writes foundations as "care-harm"; map each to its short name.
FOUNDATION_LABELS: dict[str, str] = {f"{v}-{c}": v for v, c in zip(FOUNDATIONS, VICES, strict=True)}
# Values a Social-Chem typicality can take: (1/2 or 1) x (1/4 ... 1) (paper §1.3).
TYPICALITY_STRATA: tuple[float, ...] = (0.125, 0.25, 0.375, 0.5, 0.75, 1.0)
PROTOTYPE_TYPICALITY = 1.0


def dimension_of(foundation: str, pole: str) -> str:
    """Name of the category (one of ``DIMENSIONS``) for a foundation and a polar pole."""
    if foundation not in FOUNDATIONS:
        raise ValueError(f"unknown foundation {foundation!r}; expected one of {FOUNDATIONS}")
    k = FOUNDATIONS.index(foundation)
    if pole == "virtue":
        return DIMENSIONS[2 * k]
    if pole == "vice":
        return DIMENSIONS[2 * k + 1]
    raise ValueError(f"pole must be 'virtue' or 'vice' to name a category, got {pole!r}")


def dimension_index(foundation: str, pole: str) -> int:
    """Index into the 10-d moral vector for a foundation and a polar pole."""
    return DIMENSIONS.index(dimension_of(foundation, pole))
