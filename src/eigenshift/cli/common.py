"""Options several command groups share: the model, the output folder, the results table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..core.errors import EigenshiftError
from ..core.io import prepare_out
from ..models import ModelOptions
from .options import config_options

F = TypeVar("F", bound=Callable[..., Any])

model_options = config_options(ModelOptions, into="model")


def out_option(
    help: str = "Output folder.", required: bool = True, *, marker: str | None = None,
    check: bool = True, file_okay: bool = False,
) -> Callable[[F], F]:
    """`--out`, checked before any work (`core.io.prepare_out`): with `marker`, a folder the
    command replaces as a whole (new, empty or one of ours); else one it writes files into.
    `check=False` leaves the check to the command (a run folder, which it locks, or a file an
    export replaces, `file_okay`)."""

    def prepare(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
        if value is not None and check:
            try:
                prepare_out(value, marker, create=False)  # a later refusal leaves nothing
            except EigenshiftError as exc:
                raise click.BadParameter(str(exc), ctx, param) from None
        return value

    return click.option("--out", type=click.Path(file_okay=file_okay, path_type=Path),
                        required=required, help=help, callback=prepare)  # fmt: skip


def print_results(metrics: dict[str, Any], paths: dict[str, Path]) -> None:
    from ..report import format_table

    click.echo()
    click.echo(format_table(metrics))
    click.echo(f"\nreport: {paths['html']} (and {paths['markdown'].name})")
