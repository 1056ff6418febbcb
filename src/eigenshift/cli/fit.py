"""`fit METHOD`: one command per registered method, generated from the registry: the model
options, the inputs the method needs, its config's options, and where to save it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..data import LabelledSource
from ..interventions import REGISTRY, Intervention
from .common import load, model_options, out_option
from .options import build, config_options

NEURON_DATA = ("text_column", "label_column", "layout", "max_examples", "seed")


@click.group()
def fit() -> None:
    """Fit an intervention and save it as a folder (intervention.safetensors + .json)."""


def _inputs(method: type[Intervention], kwargs: dict[str, Any], out: Path, lm: Any) -> dict:
    """The inputs `method` needs, read from the options its command was given."""
    inputs: dict[str, Any] = {}
    if "data" in method.needs:
        inputs["data"] = build(LabelledSource, kwargs).load()
    if "neurons" in method.needs:
        from ..locate.neurons import NeuronScores, neuron_scores_for

        spec = kwargs.pop("neurons")
        source = build(LabelledSource, kwargs, only=NEURON_DATA)
        if NeuronScores.is_folder(spec):
            inputs["neurons"] = NeuronScores.load(spec)
        else:  # labelled data: score the neurons first, and keep the scores beside the fit
            where = out.with_name(f"{out.name}-neurons")
            inputs["neurons"] = neuron_scores_for(lm, source.load(spec), where,
                                                  max_examples=source.max_examples)  # fmt: skip
            click.echo(f"neuron scores saved to {where}")
    return inputs


def _command(method: type[Intervention]) -> click.Command:
    def run(out: Path, **kwargs: Any) -> None:
        config = build(method.config_class, kwargs)
        data_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _input_names(method)}
        lm = load(kwargs)
        edit = method.fit(lm, config, **_inputs(method, data_kwargs, out, lm))
        edit.save(out)
        click.echo(edit.describe(lm))
        click.echo(f"saved to {out}")

    summary = (method.__doc__ or method.method).strip().splitlines()[0]
    command = out_option()(run)
    command = config_options(method.config_class)(command)
    if "data" in method.needs:
        command = config_options(LabelledSource)(command)
    if "neurons" in method.needs:
        command = config_options(LabelledSource, only=NEURON_DATA)(command)
        command = click.option("--neurons", required=True, help="A `locate neurons` folder, or "
                               "labelled data to score neurons on first.")(command)  # fmt: skip
    command = model_options(command)
    return click.command(method.method, help=summary.split(": ", 1)[-1])(command)


def _input_names(method: type[Intervention]) -> set[str]:
    names = set()
    if "data" in method.needs:
        names |= {"data", *NEURON_DATA}
    if "neurons" in method.needs:
        names |= {"neurons", *NEURON_DATA}
    return names


for _method in REGISTRY.values():
    fit.add_command(_command(_method))

COMMANDS = [fit]
