"""moralkit: the reproducible companion to "Mechanistic Origin of Moral Indifference in
Language Models" (Li, Teng, Wang, arXiv 2603.15615, 2026)."""

__version__ = "0.1.0"
