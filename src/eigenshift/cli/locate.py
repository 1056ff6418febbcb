"""`locate neurons`, `locate layers`: where the model represents toxicity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import click

from ..data import LabelledSource
from ..evaluation.run import RunFolder
from ..locate.configs import LAYER_RECORD, NEURON_RECORD, LayerConfig, NeuronConfig
from ..models import ModelOptions
from .common import model_options, out_option
from .options import behaviour_option, config_options, given_behaviour

C = TypeVar("C", NeuronConfig, LayerConfig)
LOCATE_FILES = (NEURON_RECORD, LAYER_RECORD)


def _from_data(config: C, source: LabelledSource) -> C:
    """The study records the subsample its data options drew."""
    return replace(config, max_examples=source.max_examples, seed=source.seed)


@click.group()
def locate() -> None:
    """Where the model represents toxicity (or --behaviour's): neuron experts and their
    stability, layer expertise."""


@locate.command("neurons")
@behaviour_option
@model_options
@config_options(LabelledSource, into="source")
@click.option("--data2", default=None, help="A second labelled set, for cross-data stability.")
@config_options(NeuronConfig, into="config")
@out_option()
def neurons(
    model: ModelOptions, source: LabelledSource, data2: str | None, config: NeuronConfig, out: Path
) -> None:
    """Per-neuron AUROC and AP, shares above thresholds, bootstrap and cross-data stability."""
    from ..locate import locate_neurons, write_neuron_report
    from ..locate.neurons import META_FILE, TENSORS_FILE
    from ..models.loading import load_model

    with RunFolder(out).lock(also_ours=LOCATE_FILES):  # new, empty or ours; before any work
        first = source.load()
        second = source.load(data2) if data2 else None
        scores = locate_neurons(load_model(model), first, _from_data(config, source),
                                data2=second)  # fmt: skip
        _record_sides(scores.meta)
        scores.save(out)
        report = write_neuron_report(scores, out)
    click.echo(report.read_text())
    click.echo(f"written to {out}/{TENSORS_FILE}, {META_FILE} and {report.name}")


@locate.command("layers")
@behaviour_option
@model_options
@config_options(LabelledSource, into="source")
@config_options(LayerConfig, into="config")
@out_option()
def layers(model: ModelOptions, source: LabelledSource, config: LayerConfig, out: Path) -> None:
    """Per layer: k-means AUROC and silhouette, probe AUROC, best and mean single-unit AUROC."""
    from ..locate import locate_layers, write_layer_report
    from ..locate.layers import LAYERS_FILE
    from ..models.loading import load_model

    with RunFolder(out).lock(also_ours=LOCATE_FILES):  # new, empty or ours; before any work
        scores = locate_layers(load_model(model), source.load(), _from_data(config, source))
        _record_sides(scores.meta)
        scores.save(out)
        report = write_layer_report(scores, out)
    click.echo(report.read_text())
    click.echo(f"written to {out}/{LAYERS_FILE} and {report.name} (with its figure)")


def _record_sides(meta: dict) -> None:
    """The --behaviour's sides, for the report's words (toxicity's when none was given)."""
    behaviour = given_behaviour()
    if behaviour is not None:
        meta["behaviour"] = behaviour.record()
