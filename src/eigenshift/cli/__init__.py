"""The command line: one module per command group, every option generated from a library config
(`options.py`), every command one library call; every refusal becomes one line and exit code 2.

Command modules load only when their command runs (they import torch and transformers), so
`eigenshift --version` and `eigenshift --help` start in a fraction of a second.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import sys
from typing import Any

import click

from ..core.errors import EigenshiftError
from ..core.version import __version__

# Command -> (module in this package, the short help `eigenshift --help` lists without importing
# it; tests/test_cli_options.py checks each against the command's own docstring).
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("inspect", "Architecture, sizes, whether the unembedding is tied, and the sites "
                        "found."),
    "score": ("inspect", "Toxicity probability (or, with --behaviour, of its unwanted side) of "
                         "each text, one per line: score<TAB>text."),
    "data": ("inspect", "Check that a data file or HF dataset loads, and summarise it."),
    "evaluate": ("evaluate", "Toxicity and fluency of the original model and each "
                             "intervention, on the same prompts."),
    "report": ("evaluate", "Write report.md and report.html (with figures) for an evaluation "
                           "folder."),
    "sweep": ("evaluate", "Evaluate operating points (EigenShift's k x alpha grid, other "
                          "methods' strengths) on the same prompts."),
    "tune": ("evaluate", "Choose each method's operating point on validation prompts by one "
                         "rule, then evaluate the chosen points once on disjoint test prompts."),
    "demo": ("evaluate", "The main job on the embedded defaults."),
    "fit": ("fit", "Fit an intervention and save it as a folder (intervention.safetensors + "
                   ".json)."),
    "explain": ("explain", "Each selected direction: delta, singular value, tokens it promotes; "
                           "the delta spectrum."),
    "export": ("explain", "The model with the edit baked in: a plain transformers folder or a "
                          "GGUF file (no eigenshift needed to use either)."),
    "locate": ("locate", "Where the model represents toxicity (or --behaviour's): neuron "
                         "experts and their stability, layer expertise."),
}  # fmt: skip


class Group(click.Group):
    """Loads each command's module when it is asked for; every refusal is one line on stderr
    and exit code 2, our own errors and click's usage errors alike, never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__name__}.{COMMANDS[cmd_name][0]}")
        command: click.Command = getattr(module, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, text) for name, (_, text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as usual
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            sys.exit(exc.exit_code)
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
    if not verbose:  # the hub client's retries say nothing our one error line does not
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)


def keep_freed_memory() -> None:
    """glibc hands every large freed tensor back to the kernel and maps fresh pages for the
    next one: on CPU inference that is a fifth of the time in page faults (docs/results.md).
    Keeping freed memory in the process, as jemalloc or tcmalloc do, avoids it. Commands only,
    never on `import eigenshift`; EIGENSHIFT_MALLOC=default leaves glibc as it is."""
    if not sys.platform.startswith("linux") or os.environ.get("EIGENSHIFT_MALLOC") == "default":
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 31)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


def main() -> None:
    """The `eigenshift` entry point. An error we did not foresee is a bug: it gets one line that
    says so (the traceback with -vv), never a wall of torch internals."""
    keep_freed_memory()
    try:
        cli.main(prog_name="eigenshift", standalone_mode=True)
    except KeyboardInterrupt:
        click.echo("eigenshift: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if "-vv" in sys.argv or sys.argv.count("-v") + sys.argv.count("--verbose") >= 2:
            raise
        click.echo(f"eigenshift: internal error: {type(exc).__name__}: {exc} (a bug: rerun with "
                   "-vv for the traceback and report it)", err=True)  # fmt: skip
        sys.exit(1)
