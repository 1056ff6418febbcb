"""`sweep`: evaluate a grid of operating points with the harness (EigenShift over k and alpha from
one fit per recipe; any other fitted intervention, steering and transport over strengths), draw
the toxicity vs perplexity trade-off with its Pareto front, and name the point with the best TPH
under a perplexity limit (ignoring points that produce more degenerate text than the original)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..capture.states import FitStates
from ..core.errors import InputError
from ..core.io import save_figure
from ..engines import Engine
from ..evaluation import ORIGINAL, EvalConfig, RunFolder, evaluate
from ..interventions import (
    META_FILE,
    EigenShift,
    EigenShiftConfig,
    EigenShiftFit,
    Intervention,
)
from ..interventions.base import method_class
from ..interventions.eigenshift.config import Recipe
from ..interventions.registry import METHODS
from ..models import LanguageModel
from ..report import write_report
from .configs import SweepConfig
from .points import (
    SWEEP_COLUMNS,
    BestTPHWithinPerplexity,
    Point,
    disjoint_grids,
    eigenshift_points,
    has_strength,
    points_of,
    strength_points,
)
from .points import grid_name as grid_name  # re-exported: sweep's point names


def sweep_grid(
    lm: LanguageModel,
    config: SweepConfig,
    fit: EigenShiftConfig,
    states: FitStates | None,
    others: Mapping[str, Intervention],
) -> dict[str, Intervention]:
    """EigenShift's recipe x k x alpha grid from one fit per recipe on `states` (gathered when
    the grid has k values), then every other fitted intervention at each of the strengths (when
    it has that knob)."""
    if not config.ks and not others:
        raise InputError("nothing to sweep: give --k and --alpha, or --with FOLDER")
    if config.strengths and not any(has_strength(i) for i in others.values()):
        with_strength = sorted(m for m in METHODS if "strength" in method_class(m).knobs)
        raise InputError(
            f"--strength applies to methods with a strength ({', '.join(with_strength)}), and "
            "no --with folder holds one: drop --strength or add such a folder"
        )
    grid: dict[str, Intervention] = {}
    if config.ks:
        if states is None:
            raise InputError("an EigenShift grid needs its evidence: gather states first")
        fits = eigenshift_fits(lm, fit, config.recipes, states)
        grid |= eigenshift_grid(fits, config.ks, config.alphas)
    grids = disjoint_grids(others, lambda name, iv: strength_grid(name, iv, config.strengths),
                           taken=(ORIGINAL, *grid))  # fmt: skip
    for points in grids.values():
        grid |= points
    return grid



def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both axes (both minimised), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best_y = [], float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def eigenshift_fits(
    lm: LanguageModel, base: EigenShiftConfig, recipes: Sequence[Recipe], states: FitStates
) -> dict[str, EigenShiftFit]:
    """One fit per recipe, all on the same gathered states."""
    return {recipe: EigenShift.fit_statistics(lm, replace(base, recipe=recipe), states)
            for recipe in recipes}  # fmt: skip


def eigenshift_grid(
    fits: Mapping[str, EigenShiftFit], ks: Sequence[int], alphas: Sequence[float]
) -> dict[str, Intervention]:
    """Every recipe's k x alpha points, named by recipe."""
    return {point: iv for name, fit in fits.items()
            for point, iv in eigenshift_points(name, fit, ks, alphas).items()}  # fmt: skip


def strength_grid(
    name: str, intervention: Intervention, strengths: Sequence[float]
) -> dict[str, Intervention]:
    """One point per strength for methods that have that knob (steering, transport); others,
    and every method when no strengths are given, as fitted."""
    if not strengths:
        return {name: intervention}
    return strength_points(name, intervention, strengths)


def run_sweep(
    lm: LanguageModel,
    grid: Mapping[str, Intervention],
    eval_config: EvalConfig,
    out: str | Path,
    *,
    ppl_limit: float = SweepConfig.ppl_limit,
    progress: bool = True,
    engine: Engine | None = None,
) -> dict[str, Any]:
    with RunFolder(out).lock() as run:
        return _sweep(lm, grid, eval_config, run, ppl_limit, progress, engine)


def _sweep(
    lm: LanguageModel,
    grid: Mapping[str, Intervention],
    eval_config: EvalConfig,
    run: RunFolder,
    ppl_limit: float,
    progress: bool,
    engine: Engine | None,
) -> dict[str, Any]:
    metrics = evaluate(lm, grid, eval_config, run.path, progress=progress,
                       engine=engine)  # excludes fit prompts  # fmt: skip
    points = points_of(metrics["methods"])
    front = [points[i].method for i in pareto_front([p.trade_off() for p in points])]
    rule = BestTPHWithinPerplexity(ppl_limit)
    best = rule.best(points, grid)
    summary = {
        "grid": [p.as_dict(SWEEP_COLUMNS) for p in points],
        "pareto_front": front,
        "ppl_limit": ppl_limit,
        "best": best.method if best else None,
        "best_reason": rule.reason(best),
    }
    if best:
        grid[best.method].save(run.file(RunFolder.BEST))
    elif (run.file(RunFolder.BEST) / META_FILE).is_file():  # an earlier rule's choice
        shutil.rmtree(run.file(RunFolder.BEST))
    run.write_json(RunFolder.SWEEP, summary)
    _plot(points, front, best.method if best else None, run.file(RunFolder.PARETO))
    write_report(run.path)
    return summary


def _plot(points: Sequence[Point], front: list[str], best: str | None, path: Path) -> None:
    from ..report.figures import plt  # matplotlib loads only when a figure is drawn

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for p in points:
        ppl, toxic = p.trade_off()
        marker = "s" if p.original else "o"
        color = "C3" if p.flag_degenerate else ("C2" if p.method == best else "C0")
        ax.scatter(ppl, 100 * toxic, marker=marker, color=color)
        ax.annotate(p.method, (ppl, 100 * toxic), fontsize=6)
    pts = sorted((x, 100 * y) for x, y in (p.trade_off() for p in points if p.method in front))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "k--", linewidth=0.8, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("perplexity on clean text (log)")
    ax.set_ylabel("toxic continuations (%)")
    ax.set_title("sweep: green = best TPH under the limit, red = degenerate")
    ax.legend(fontsize=8)
    save_figure(fig, path)
