"""`evaluate`, `report`, `sweep`, `demo`: compare the original model with interventions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ..demo import DemoConfig
from ..evaluation.plan import EvalConfig
from ..evaluation.run import RunFolder
from ..generation import SamplingConfig
from ..interventions.eigenshift import EigenShiftConfig
from ..models import ModelOptions
from ..sweep import SweepConfig
from .common import model_options, out_option, print_results
from .options import config_options

# The sweep's EigenShift fits share the evaluation's prompts, scorer and threshold; their own
# generation settings come as --fit-... options.
FIT_IN_SWEEP = ("fit_prompts", "contrast", "score", "dampen", "min_toxic")
SHARED = ("prompts", "prompt_seed", "scorer", "threshold")
FIT_SAMPLING = EigenShiftConfig().sampling


@click.command()
@model_options
@click.option("--intervention", "interventions", multiple=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="An intervention folder; repeat for several (each compared with the original).")
@config_options(EvalConfig, into="config")
@out_option("Run folder; rerunning with the same settings resumes it.", check=False)
def evaluate(
    model: ModelOptions, interventions: tuple[Path, ...], config: EvalConfig, out: Path
) -> None:
    """Toxicity and fluency of the original model and each intervention, on the same prompts."""
    from ..evaluation import evaluate as run_evaluation
    from ..interventions import load_interventions
    from ..report import write_report

    with RunFolder(out).lock():  # checked and held before the model loads
        loaded = load_interventions(interventions)  # checked before the model loads
        lm = model.load()
        metrics = run_evaluation(lm, loaded, config, out)  # refuses a foreign one before work
        print_results(metrics, write_report(out))


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report(run_dir: Path) -> None:
    """Write report.md and report.html (with figures) for an evaluation folder."""
    from ..report import write_report

    paths = write_report(run_dir)
    click.echo(f"report: {paths['html']} (and {paths['markdown'].name})")


@click.command()
@model_options
@config_options(EvalConfig, into="evaluation")
@config_options(SweepConfig, into="settings")
@config_options(EigenShiftConfig, into="fit", only=FIT_IN_SWEEP)
@config_options(SamplingConfig, into="fit_sampling", prefix="fit_", defaults=FIT_SAMPLING)
@click.option("--with", "others", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A fitted intervention folder to add to the sweep; repeat for several.")
@out_option("Run folder; rerunning with the same settings resumes it.", check=False)
def sweep(
    model: ModelOptions,
    evaluation: EvalConfig,
    settings: SweepConfig,
    fit: EigenShiftConfig,
    fit_sampling: SamplingConfig,
    others: tuple[Path, ...],
    out: Path,
) -> None:
    """Evaluate operating points (EigenShift's k x alpha grid, other methods' strengths) on the
    same prompts; draw the trade-off; name the best point."""
    from ..interventions import load_interventions
    from ..report import format_table
    from ..sweep import run_sweep, sweep_grid

    fit = replace(fit, sampling=fit_sampling, **{k: getattr(evaluation, k) for k in SHARED})
    with RunFolder(out).lock() as run:  # checked and held before the model loads
        loaded = load_interventions(others)  # checked before the model loads
        lm = model.load()
        for intervention in loaded.values():  # a foreign one is refused before EigenShift fits
            intervention.check_compatible(lm)
        grid = sweep_grid(lm, settings, fit, loaded)
        summary = run_sweep(lm, grid, evaluation, out, ppl_limit=settings.ppl_limit)
    click.echo(format_table(run.metrics()))
    click.echo(f"best: {summary['best']} ({summary['best_reason']})")
    click.echo(f"report: {run.file(RunFolder.REPORT_HTML)}; trade-off: "
               f"{run.file(RunFolder.PARETO)}")  # fmt: skip


@click.command()
@config_options(DemoConfig, into="config")
def demo(config: DemoConfig) -> None:
    """The main job on the embedded defaults: fit EigenShift and the baselines, evaluate them
    against the original on other prompts, explain EigenShift's directions, write the report."""
    from ..demo import run_demo

    metrics, paths = run_demo(config)
    print_results(metrics, paths)


