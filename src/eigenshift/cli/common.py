"""Options several command groups share: the model, the output folder, the results table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..models import ModelOptions
from .options import config_options

F = TypeVar("F", bound=Callable[..., Any])

model_options = config_options(ModelOptions, into="model")


def out_option(help: str = "Output folder.", required: bool = True) -> Callable[[F], F]:
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path),
                        required=required, help=help)  # fmt: skip


def print_results(metrics: dict[str, Any], paths: dict[str, Path]) -> None:
    from ..report import format_table

    click.echo()
    click.echo(format_table(metrics))
    click.echo(f"\nreport: {paths['html']} (and {paths['markdown'].name})")
