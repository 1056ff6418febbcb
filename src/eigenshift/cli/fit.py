"""`fit METHOD`: one command per registered method, generated from the registry: the model
options, the inputs the method needs, its config's options, and where to save it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..data import LabelledSource
from ..engines import EngineConfig, open_engine
from ..interventions import META_FILE, REGISTRY, Intervention
from ..models import ModelOptions
from .common import model_options, out_option
from .options import config_options

NEURON_DATA = ("text_column", "label_column", "layout", "max_examples", "seed")


@click.group()
def fit() -> None:
    """Fit an intervention and save it as a folder (intervention.safetensors + .json)."""


def _command(method: type[Intervention]) -> click.Command:
    def run(
        model: ModelOptions,
        config: Any,
        out: Path,
        data: LabelledSource | None = None,
        neurons: str | None = None,
        neuron_data: LabelledSource | None = None,
        engine: EngineConfig | None = None,
    ) -> None:
        lm = model.load()
        inputs: dict[str, Any] = {}
        if data is not None:
            inputs["data"] = data.load()
        if neurons is not None and neuron_data is not None:
            from ..locate.neurons import neuron_scores_from

            kept = out.with_name(f"{out.name}-neurons")  # scores computed here are kept
            inputs["neurons"] = neuron_scores_from(lm, neurons, neuron_data, kept)
        with open_engine(engine) as opened:
            edit = method.fit(lm, config, engine=opened, **inputs)
        edit.save(out)
        click.echo(edit.describe(lm))
        click.echo(f"saved to {out}")

    command = out_option(marker=META_FILE)(run)
    command = config_options(method.config_class, into="config")(command)
    if method.generates:
        command = config_options(EngineConfig, into="engine")(command)
    if "data" in method.needs:
        command = config_options(LabelledSource, into="data")(command)
    if "neurons" in method.needs:
        command = config_options(LabelledSource, into="neuron_data", only=NEURON_DATA)(command)
        command = click.option("--neurons", required=True, help="A `locate neurons` folder, or "
                               "labelled data to score neurons on first.")(command)  # fmt: skip
    command = model_options(command)
    summary = (method.__doc__ or method.method).strip().splitlines()[0]
    return click.command(method.method, help=summary.split(": ", 1)[-1])(command)


for _method in REGISTRY.values():
    fit.add_command(_command(_method))

