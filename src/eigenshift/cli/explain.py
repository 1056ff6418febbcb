"""`explain`, `export`: what an edit removes, and the edit baked into plain weights."""

from __future__ import annotations

from pathlib import Path

import click

from ..export import EXPORT_FILE
from ..models import ModelOptions
from ..models.loading import LOGIT_BIAS_FILE
from .common import model_options, out_option


@click.command()
@click.argument("intervention_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", "-m", default=None, help="Default: the model the artifact was fitted on.")
@click.option("--top", type=click.IntRange(min=1), default=12, show_default=True,
              help="Tokens listed per direction and side.")  # fmt: skip
@out_option("Where explain.md goes (default: the intervention folder).", required=False)
def explain(intervention_dir: Path, model: str | None, top: int, out: Path | None) -> None:
    """Each selected direction: delta, singular value, tokens it promotes; the delta spectrum."""
    from ..explain import explain_artifact

    paths = explain_artifact(intervention_dir, model, out, top)
    click.echo(paths["markdown"].read_text())
    click.echo(f"written to {paths['markdown']} and {paths['figure'].name}")


@click.command()
@model_options
@click.option("--intervention", "intervention_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path))  # fmt: skip
@out_option("The exported model folder.", marker=EXPORT_FILE)
def export(model: ModelOptions, intervention_dir: Path, out: Path) -> None:
    """The model with the edit baked in, as a plain transformers folder (no eigenshift needed)."""
    from ..export import export_model
    from ..interventions import load_intervention

    edit = load_intervention(intervention_dir)  # checked before the model loads
    lm = model.load()
    folder = export_model(lm, edit, out)  # the bake refuses it on a model it was not fitted on
    click.echo(f"exported to {folder}: AutoModelForCausalLM.from_pretrained('{folder}') loads it")
    if (folder / LOGIT_BIAS_FILE).is_file():
        click.echo("the edit adds a constant logit bias: transformers' generate applies it from "
                   f"generation_config.json; give {LOGIT_BIAS_FILE} as logit_bias to vLLM or an "
                   "OpenAI-style server")  # fmt: skip
