"""Locating toxicity: expert scores of neurons and their stability (RQ1), layer expertise (RQ2)."""

from .layers import LayerConfig, LayerScores, kmeans_expertise, locate_layers
from .neurons import NeuronConfig, NeuronScores, locate_neurons, resolve_sites
from .report import write_layer_report, write_neuron_report
from .stats import auroc, average_precision

__all__ = [
    "LayerConfig",
    "LayerScores",
    "NeuronConfig",
    "NeuronScores",
    "auroc",
    "average_precision",
    "kmeans_expertise",
    "locate_layers",
    "locate_neurons",
    "resolve_sites",
    "write_layer_report",
    "write_neuron_report",
]
