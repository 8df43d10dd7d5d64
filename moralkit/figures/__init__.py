"""Plot functions for the chapters: one module per diagnostic.

Each function takes tidy tables produced by :mod:`moralkit.diagnostics` and returns a
matplotlib :class:`~matplotlib.figure.Figure`; no analysis happens here.
"""
