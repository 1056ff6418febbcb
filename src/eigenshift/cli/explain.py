"""`explain`, `export`: what an edit removes, and the edit baked into plain weights."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.io import prepare_out
from ..export.config import EXPORT_FILE, ExportConfig
from ..models.options import LOGIT_BIAS_FILE, ModelOptions
from ..report.configs import ExplainConfig
from .common import model_options, out_option
from .options import config_options


@click.command()
@click.argument("intervention_dir", type=click.Path(file_okay=False, path_type=Path))
@config_options(ExplainConfig, into="config")
@out_option("Where explain.md goes (default: the intervention folder).", required=False)
def explain(intervention_dir: Path, config: ExplainConfig, out: Path | None) -> None:
    """Each selected direction: delta, singular value, tokens it promotes; the delta spectrum."""
    from ..report.explain import explain_artifact

    paths = explain_artifact(intervention_dir, config.model, out, config.top)
    click.echo(paths["markdown"].read_text())
    click.echo(f"written to {paths['markdown']} and {paths['figure'].name}")


@click.command()
@model_options
@click.option("--intervention", "intervention_dir", required=True,
              type=click.Path(file_okay=False, path_type=Path))  # fmt: skip
@config_options(ExportConfig, into="config")
@out_option("The exported model folder (hf) or .gguf file (gguf).", check=False, file_okay=True)
def export(model: ModelOptions, intervention_dir: Path, config: ExportConfig, out: Path) -> None:
    """The model with the edit baked in: a plain transformers folder or a GGUF file (no
    eigenshift needed to use either)."""
    from ..export.gguf import check_gguf_out, check_gguf_source, export_gguf
    from ..export.hf import export_model
    from ..interventions import load_intervention

    if config.format == "hf":
        prepare_out(out, EXPORT_FILE)
    else:
        check_gguf_source(model.model)
        check_gguf_out(out)
    edit = load_intervention(intervention_dir)  # checked before the model loads
    from ..models.loading import load_model

    lm = load_model(model)
    if config.format == "gguf":
        path = export_gguf(lm, edit, out, tensor_type=config.gguf_type)
        click.echo(f"exported to {path}: llama.cpp, llama-cpp-python and Ollama load it "
                   "(a control vector: llama-cli --control-vector)")  # fmt: skip
        bias = path.with_name(path.stem + "." + LOGIT_BIAS_FILE)
        if bias.is_file():
            click.echo("the edit adds a constant logit bias (eigenshift.logit_bias in the "
                       f"metadata, and {bias.name}): pass it as logit_bias to "
                       "llama.cpp")  # fmt: skip
        return
    folder = export_model(lm, edit, out)  # the bake refuses it on a model it was not fitted on
    click.echo(f"exported to {folder}: AutoModelForCausalLM.from_pretrained('{folder}') loads it")
    if (folder / LOGIT_BIAS_FILE).is_file():
        click.echo("the edit adds a constant logit bias: transformers' generate applies it from "
                   f"generation_config.json; give {LOGIT_BIAS_FILE} as logit_bias to vLLM or an "
                   "OpenAI-style server")  # fmt: skip
