"""The command line: one module per command group, every option generated from a library config
(`options.py`), every command one library call; our errors become one line and exit code 2."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from ..errors import EigenshiftError
from ..version import __version__


class Group(click.Group):
    """Every refusal is one line on stderr and exit code 2: our own errors and click's usage
    errors alike, never a traceback or a usage block."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EigenshiftError as exc:
            click.echo(f"eigenshift: error: {exc}", err=True)
            ctx.exit(2)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[call-overload]
        except click.ClickException as exc:
            hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
            message = " ".join(exc.format_message().split())
            click.echo(f"eigenshift: error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("eigenshift: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=Group)
@click.version_option(__version__, prog_name="eigenshift")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Find, explain and remove toxic behaviour in causal language models, without training."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("eigenshift").setLevel(min(level, logging.INFO))


def _register() -> None:
    from . import evaluate, explain, fit, inspect, locate

    for module in (inspect, evaluate, fit, explain, locate):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    try:
        cli.main(prog_name="eigenshift", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("eigenshift: interrupted", err=True)
        sys.exit(130)
