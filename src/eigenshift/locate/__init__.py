"""Locating toxicity: expert scores of neurons (and, to come, layers)."""

from .stats import auroc, average_precision

__all__ = ["auroc", "average_precision"]
