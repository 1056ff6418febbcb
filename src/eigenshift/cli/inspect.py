"""`info`, `score`, `data`: look at a model, a text or a data file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..core.errors import InputError
from ..data import LabelledSource
from ..models import ModelOptions
from ..scoring.config import ScoreConfig
from .common import model_options
from .options import behaviour_option, config_options, given_behaviour


@click.command()
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def info(model: ModelOptions, as_json: bool) -> None:
    """Architecture, sizes, whether the unembedding is tied, and the sites found."""
    from ..models.loading import load_model

    lm = load_model(model)
    desc = lm.describe()
    if as_json:
        click.echo(json.dumps(desc, indent=2))
        return
    width = max(len(k) for k in desc)
    for key, value in desc.items():
        click.echo(f"{key:<{width}}  {value}")
    click.echo(f"{'mlp sites':<{width}}  {lm.arch.mlp_site_names()[0]} ... (x{lm.arch.num_layers})")


@click.command()
@click.argument("texts", nargs=-1)
@click.option("--file", "file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Score each line of this file instead.")  # fmt: skip
@config_options(ScoreConfig, into="config")
@behaviour_option
def score(texts: tuple[str, ...], file: Path | None, config: ScoreConfig) -> None:
    """Toxicity probability (or, with --behaviour, of its unwanted side) of each text, one per
    line: score<TAB>text."""
    from ..core.io import read_text
    from ..scoring import load_scorer

    items = list(texts)
    if file is not None:
        if not file.is_file():
            raise click.BadParameter(f"file not found: {file}", param_hint="--file")
        lines = [line for line in read_text(file, "--file").splitlines() if line.strip()]
        if not lines:
            raise InputError(f"--file {file} holds no text (one text per line is scored)")
        items += lines
    if not items:
        raise click.UsageError("give texts to score, or --file")
    for text, value in zip(items, load_scorer(config.scorer).score(items), strict=True):
        click.echo(f"{value:.4f}\t{text}")


@click.command()
@click.argument("kind", type=click.Choice(["prompts", "labelled", "clean"]))
@click.argument("spec", default=None, required=False)
@config_options(LabelledSource, into="source", only=("text_column", "label_column", "layout"),
                defaults=LabelledSource(max_examples=None))  # fmt: skip
@behaviour_option
def data(kind: str, spec: str | None, source: LabelledSource) -> None:
    """Check that a data file or HF dataset loads, and summarise it (--text-column also names
    the prompt or clean-text column). Without SPEC: the behaviour's file of that kind."""
    from ..data import load_clean_texts, load_prompts
    from ..data.behaviour import Behaviour

    behaviour = given_behaviour() or Behaviour()
    if spec is None:
        spec = {"prompts": behaviour.prompts, "labelled": behaviour.data,
                "clean": behaviour.clean_text}[kind]  # fmt: skip

    if kind == "prompts":
        prompts = load_prompts(spec, column=source.text_column)
        scored = [p.toxicity for p in prompts.prompts if p.toxicity is not None]
        extra = f", prompt toxicity recorded for {len(scored)}" if scored else ""
        click.echo(f"{len(prompts)} prompts from {prompts.source}{extra}")
    elif kind == "labelled":
        labelled = source.load(spec)
        click.echo(
            f"{len(labelled)} texts from {labelled.source}: {labelled.n_toxic} "
            f"{behaviour.unwanted}, {len(labelled) - labelled.n_toxic} {behaviour.wanted}"
        )
    else:
        clean = load_clean_texts(spec, column=source.text_column)
        click.echo(f"{len(clean)} clean texts from {clean.source}")


