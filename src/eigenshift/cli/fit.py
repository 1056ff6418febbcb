"""`fit METHOD`: one command per registered method, generated from the registry (without importing
any method): the model options, the inputs the method needs, its config's options, and where to
save it. A method that needs `states` gets the evidence room's options (and an engine's, for
generated evidence); the states are gathered first, then handed to the method's fit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..data.labelled import LabelledSource
from ..engines.config import EngineConfig
from ..evidence.config import EvidenceConfig
from ..interventions.registry import META_FILE, METHODS, MethodSpec
from ..models.options import ModelOptions
from .common import model_options, out_option
from .options import behaviour_option, config_options, given_behaviour

NEURON_DATA = ("text_column", "label_column", "layout", "max_examples", "seed")


@click.group()
def fit() -> None:
    """Fit an intervention and save it as a folder (intervention.safetensors + .json)."""


def _command(spec: MethodSpec) -> click.Command:
    def run(
        model: ModelOptions,
        config: object,
        out: Path,
        data: LabelledSource | None = None,
        neurons: str | None = None,
        neuron_data: LabelledSource | None = None,
        evidence: EvidenceConfig | None = None,
        engine: EngineConfig | None = None,
        members: tuple[str, ...] = (),
    ) -> None:
        from ..engines import open_engine
        from ..interventions import load_intervention, method_class

        method = method_class(spec.method)
        from ..models.loading import load_model

        lm = load_model(model)
        inputs: dict[str, Any] = {}
        if data is not None:
            inputs["data"] = data.load()
        if neurons is not None and neuron_data is not None:
            from ..locate.neurons import neuron_scores_from

            kept = out.with_name(f"{out.name}-neurons")  # scores computed here are kept
            inputs["neurons"] = neuron_scores_from(lm, neurons, neuron_data, kept)
        if members:
            inputs["members"] = [load_intervention(folder, lm) for folder in members]
        if evidence is not None:
            from ..evidence import gather

            with open_engine(engine) as opened:
                inputs["states"] = gather(lm, evidence, engine=opened)
        edit = method.fit(lm, config, **inputs)
        if (behaviour := given_behaviour()) is not None:
            edit.meta.behaviour = behaviour.record()
        edit.save(out)
        click.echo(edit.describe(lm))
        click.echo(f"saved to {out}")

    command = out_option(marker=META_FILE)(run)
    if "states" in spec.needs:
        command = config_options(EngineConfig, into="engine")(command)
        command = config_options(EvidenceConfig, into="evidence")(command)
    command = config_options(spec.config, into="config")(command)
    if "data" in spec.needs:
        command = config_options(LabelledSource, into="data")(command)
    if "neurons" in spec.needs:
        command = config_options(LabelledSource, into="neuron_data", only=NEURON_DATA,
                                 behaviour=False)(command)  # --neurons' data, not the behaviour's
        command = click.option("--neurons", required=True, help="A `locate neurons` folder, or "
                               "labelled data to score neurons on first.")(command)  # fmt: skip
    if "members" in spec.needs:
        command = click.option("--member", "members", multiple=True, required=True,
                               help="A fitted intervention's folder; repeat it, in the order "
                               "the edits apply.")(command)  # fmt: skip
    command = behaviour_option(model_options(command))
    return click.command(spec.method, help=spec.summary)(command)


for _spec in METHODS.values():
    fit.add_command(_command(_spec))
