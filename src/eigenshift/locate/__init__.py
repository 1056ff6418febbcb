"""Locating toxicity: expert scores of neurons and their stability (RQ1), layer expertise (RQ2).

Names are imported on first use, so `import eigenshift` does not load scikit-learn (the layer
probes) or matplotlib (the reports) until a locate study runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

_WHERE = {
    "LayerConfig": "configs",
    "LayerScores": "layers",
    "kmeans_expertise": "layers",
    "locate_layers": "layers",
    "NeuronConfig": "configs",
    "NeuronScores": "neurons",
    "locate_neurons": "neurons",
    "neuron_scores_for": "neurons",
    "neuron_scores_from": "neurons",
    "write_layer_report": "report",
    "write_neuron_report": "report",
    "auroc": "stats",
    "average_precision": "stats",
}

if TYPE_CHECKING:
    from .configs import LayerConfig, NeuronConfig
    from .layers import LayerScores, kmeans_expertise, locate_layers
    from .neurons import NeuronScores, locate_neurons, neuron_scores_for, neuron_scores_from
    from .report import write_layer_report, write_neuron_report
    from .stats import auroc, average_precision


__getattr__, __dir__ = lazy_names(__name__, _WHERE)


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
    "neuron_scores_for",
    "neuron_scores_from",
    "write_layer_report",
    "write_neuron_report",
]
