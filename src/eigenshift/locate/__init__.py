"""Locating toxicity: expert scores of neurons and their stability (layers come next)."""

from .neurons import NeuronConfig, NeuronScores, locate_neurons, resolve_sites
from .report import write_neuron_report
from .stats import auroc, average_precision

__all__ = [
    "NeuronConfig",
    "NeuronScores",
    "auroc",
    "average_precision",
    "locate_neurons",
    "resolve_sites",
    "write_neuron_report",
]
