"""`evaluate`, `report`, `sweep`, `tune`, `demo`: compare the original model with interventions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..engines.config import SamplingConfig
from ..evaluation.config import EvalConfig
from ..evaluation.run import RunFolder
from ..evidence.config import EvidenceConfig
from ..interventions.eigenshift.config import EigenShiftConfig
from ..models.options import ModelOptions
from ..studies.configs import DemoConfig, SweepConfig, TuneConfig
from .common import model_options, out_option, print_results
from .options import F, behaviour_option, config_options, refuse_preference, shared_fields

if TYPE_CHECKING:
    from ..interventions import EigenShiftFit, Intervention

# A study's EigenShift evidence shares the evaluation's settings of the same name (prompts,
# prompt seed, scorer, threshold); its own sampling comes as --fit-... options.
SHARED = shared_fields(EvidenceConfig, EvalConfig)
FIT_SAMPLING = EvidenceConfig().sampling


def fit_options(study: type[SweepConfig] | type[TuneConfig]) -> Callable[[F], F]:
    """The options of a study's EigenShift fit: its evidence (less what the evaluation shares),
    the evidence's sampling as --fit-..., and EigenShift's settings less those the grid sets."""

    def decorate(fn: F) -> F:
        fn = config_options(EigenShiftConfig, into="fit", exclude=study.grid_fields)(fn)
        fn = config_options(SamplingConfig, into="fit_sampling", prefix="fit_",
                            defaults=FIT_SAMPLING)(fn)  # fmt: skip
        return config_options(EvidenceConfig, into="evidence", exclude=(*SHARED, "sampling"))(fn)

    return decorate


def refuse_nested(out: Path, inputs: tuple[Path, ...]) -> None:
    """A run writes only under --out: an input folder inside it could be replaced (a tune's
    chosen/NAME), and --out inside an input folder would write into it."""
    from ..core.errors import InputError

    run = out.resolve()
    for folder in inputs:
        given = folder.resolve()
        if given.is_relative_to(run) or run.is_relative_to(given):
            raise InputError(f"{folder} and --out {out} are nested: a run writes only under "
                             "--out and never into an input folder; give an --out outside "
                             "every intervention folder")  # fmt: skip


def study_evidence(
    evidence: EvidenceConfig, sampling: SamplingConfig, evaluation: EvalConfig
) -> EvidenceConfig:
    return replace(evidence, sampling=sampling, **{k: getattr(evaluation, k) for k in SHARED})


@click.command()
@behaviour_option
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

    refuse_nested(out, interventions)
    with RunFolder(out).lock():  # checked and held before the model loads
        loaded = load_interventions(interventions)  # checked before the model loads
        from ..models.loading import load_model

        lm = load_model(model)
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
@behaviour_option
@model_options
@config_options(EvalConfig, into="evaluation")
@config_options(SweepConfig, into="settings")
@fit_options(SweepConfig)
@click.option("--with", "others", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A fitted intervention folder to add to the sweep; repeat for several.")
@out_option("Run folder; rerunning with the same settings resumes it.", check=False)
def sweep(
    model: ModelOptions,
    evaluation: EvalConfig,
    settings: SweepConfig,
    evidence: EvidenceConfig,
    fit_sampling: SamplingConfig,
    fit: EigenShiftConfig,
    others: tuple[Path, ...],
    out: Path,
) -> None:
    """Evaluate operating points (EigenShift's k x alpha grid, other methods' strengths) on the
    same prompts; draw the trade-off; name the best point."""
    from ..engines import open_engine
    from ..evidence import gather
    from ..interventions import load_interventions
    from ..report import format_table
    from ..studies.sweep import run_sweep, sweep_grid

    refuse_preference("sweep")
    evidence = study_evidence(evidence, fit_sampling, evaluation)
    refuse_nested(out, others)
    with RunFolder(out).lock() as run:  # checked and held before the model loads
        loaded = load_interventions(others)  # checked before the model loads
        from ..models.loading import load_model

        lm = load_model(model)
        for intervention in loaded.values():  # a foreign one is refused before EigenShift fits
            intervention.check_compatible(lm)
        with open_engine(evaluation.engine) as engine:
            states = gather(lm, evidence, engine=engine) if settings.ks else None
            grid = sweep_grid(lm, settings, fit, states, loaded)
            summary = run_sweep(lm, grid, evaluation, out, ppl_limit=settings.ppl_limit,
                                engine=engine)  # fmt: skip
    click.echo(format_table(run.metrics()))
    click.echo(f"best: {summary['best']} ({summary['best_reason']})")
    click.echo(f"report: {run.file(RunFolder.REPORT_HTML)}; trade-off: "
               f"{run.file(RunFolder.PARETO)}")  # fmt: skip


@click.command()
@behaviour_option
@model_options
@config_options(EvalConfig, into="evaluation")
@config_options(TuneConfig, into="settings")
@fit_options(TuneConfig)
@click.option("--eigenshift/--no-eigenshift", default=True, show_default=True,
              help="Fit EigenShift and tune its k and alpha.")
@click.option("--with", "others", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A fitted intervention folder to tune too (over its strength, when it has "
                   "one); repeat for several.")  # fmt: skip
@out_option("Tune folder; rerunning with the same settings resumes it.", check=False)
def tune(
    model: ModelOptions,
    evaluation: EvalConfig,
    settings: TuneConfig,
    evidence: EvidenceConfig,
    fit_sampling: SamplingConfig,
    fit: EigenShiftConfig,
    eigenshift: bool,
    others: tuple[Path, ...],
    out: Path,
) -> None:
    """Choose each method's operating point on validation prompts by one rule, then evaluate the
    chosen points once on disjoint test prompts."""
    refuse_preference("tune")
    from ..core.errors import InputError
    from ..engines import open_engine
    from ..evidence import gather
    from ..interventions import EigenShift, load_interventions
    from ..report import format_table
    from ..studies.tune import tune as run_tune
    from ..studies.tune import tune_settings

    if not eigenshift and not others:
        raise InputError("nothing to tune: keep --eigenshift or give --with FOLDER")
    refuse_preference("sweep")
    evidence = study_evidence(evidence, fit_sampling, evaluation)
    refuse_nested(out, others)
    with RunFolder(out).lock() as run:  # checked and held before the model loads
        run.check_settings(tune_settings(settings))  # a rule other than the folder's: refused
        # checked before the model loads; never named like the EigenShift it fits
        loaded = load_interventions(others, reserved=("original", "eigenshift"))
        from ..models.loading import load_model

        lm = load_model(model)
        for intervention in loaded.values():
            intervention.check_compatible(lm)
        methods: dict[str, EigenShiftFit | Intervention] = dict(loaded)
        with open_engine(evaluation.engine) as engine:  # one vLLM worker for fit and tune
            if eigenshift:
                states = gather(lm, evidence, engine=engine)
                methods = {"eigenshift": EigenShift.fit_statistics(lm, fit, states), **methods}
            summary = run_tune(lm, methods, settings, evaluation, out, engine=engine)
    click.echo(format_table(RunFolder(out / "test").metrics()))
    for name, point in summary["chosen"].items():
        click.echo(f"{name}: {point or 'no point meets the rule'}")
    click.echo(f"rule: {summary['rule']}; summary: {out / 'tune.json'}")


@click.command()
@config_options(DemoConfig, into="config")
def demo(config: DemoConfig) -> None:
    """The main job on the embedded defaults: fit EigenShift and the baselines, evaluate them
    against the original on other prompts, explain EigenShift's directions, write the report."""
    from ..studies.demo import run_demo

    metrics, paths = run_demo(config)
    print_results(metrics, paths)


