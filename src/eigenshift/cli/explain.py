"""`explain`, `export`: what an edit removes, and the edit baked into plain weights."""

from __future__ import annotations

from pathlib import Path

import click

from ..export import EXPORT_FILE
from ..gguf_export import GGUF_TYPES
from ..io_utils import prepare_out
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
@click.option("--format", "fmt", type=click.Choice(["hf", "gguf"]), default="hf",
              show_default=True, help="hf: a transformers folder; gguf: one .gguf file for "
              "llama.cpp and Ollama, from the GGUF the model was loaded from (steering: a "
              "llama.cpp control vector).")  # fmt: skip
@click.option("--gguf-type", type=click.Choice(GGUF_TYPES), default="f16", show_default=True,
              help="Type of the tensors the edit changes (source: re-quantized to the source "
              "tensor's type); every other tensor is copied as it was.")  # fmt: skip
@out_option("The exported model folder (hf) or .gguf file (gguf).", check=False)
def export(
    model: ModelOptions, intervention_dir: Path, fmt: str, gguf_type: str, out: Path
) -> None:
    """The model with the edit baked in: a plain transformers folder or a GGUF file (no
    eigenshift needed to use either)."""
    from ..export import export_model
    from ..gguf_export import check_gguf_source, export_gguf
    from ..interventions import load_intervention

    if fmt == "hf":
        prepare_out(out, EXPORT_FILE)
    else:
        check_gguf_source(model.model)
    edit = load_intervention(intervention_dir)  # checked before the model loads
    lm = model.load()
    if fmt == "gguf":
        path = export_gguf(lm, edit, out, tensor_type=gguf_type)
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
