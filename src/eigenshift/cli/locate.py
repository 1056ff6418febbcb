"""`locate neurons`, `locate layers`: where the model represents toxicity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..data import LabelledSource
from .common import load, model_options, out_option
from .options import build, config_options

FROM_DATA = ("max_examples", "seed")  # study settings the data options set


@click.group()
def locate() -> None:
    """Where the model represents toxicity: neuron experts and their stability, layer expertise."""


def _neuron_options(fn: Any) -> Any:
    from ..locate.neurons import NeuronConfig

    return config_options(NeuronConfig)(fn)


def _layer_options(fn: Any) -> Any:
    from ..locate.layers import LayerConfig

    return config_options(LayerConfig)(fn)


@locate.command("neurons")
@model_options
@config_options(LabelledSource)
@click.option("--data2", default=None, help="A second labelled set, for cross-data stability.")
@_neuron_options
@out_option()
def neurons(data2: str | None, out: Path, **kwargs: Any) -> None:
    """Per-neuron AUROC and AP, shares above thresholds, bootstrap and cross-data stability."""
    from ..locate import NeuronConfig, locate_neurons, write_neuron_report

    source = build(LabelledSource, kwargs)
    config = build(NeuronConfig, kwargs, **{k: getattr(source, k) for k in FROM_DATA})
    first = source.load()
    second = source.load(data2) if data2 else None
    scores = locate_neurons(load(kwargs), first, config, data2=second)
    scores.save(out)
    report = write_neuron_report(scores, out)
    click.echo(report.read_text())
    click.echo(f"written to {out}/neurons.safetensors, neurons.json and {report.name}")


@locate.command("layers")
@model_options
@config_options(LabelledSource)
@_layer_options
@out_option()
def layers(out: Path, **kwargs: Any) -> None:
    """Per layer: k-means AUROC and silhouette, probe AUROC, best and mean single-unit AUROC."""
    from ..locate import LayerConfig, locate_layers, write_layer_report

    source = build(LabelledSource, kwargs)
    config = build(LayerConfig, kwargs, **{k: getattr(source, k) for k in FROM_DATA})
    scores = locate_layers(load(kwargs), source.load(), config)
    scores.save(out)
    report = write_layer_report(scores, out)
    click.echo(report.read_text())
    click.echo(f"written to {out}/layers.json, layers.png and {report.name}")


COMMANDS = [locate]
