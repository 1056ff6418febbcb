"""`sweep`: evaluate a grid of operating points with the harness (EigenShift over k and alpha from
one fit per recipe; any other fitted intervention, steering and transport over strengths), draw
the toxicity vs perplexity trade-off with its Pareto front, and name the point with the best TPH
under a perplexity limit (ignoring points that produce more degenerate text than the original)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..capture.states import FitStates
from ..core.errors import InputError
from ..engines import Engine
from ..evaluation import ORIGINAL, EvalConfig, RunFolder, evaluate
from ..interventions import EigenShift, EigenShiftConfig, EigenShiftFit, Intervention
from ..interventions.base import method_class
from ..interventions.eigenshift.config import Recipe
from ..interventions.registry import METHODS
from ..models import LanguageModel
from ..report import write_report
from .configs import SweepConfig


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
    if config.strengths and not any("strength" in i.knobs for i in others.values()):
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
    for name, intervention in others.items():
        grid |= strength_grid(name, intervention, config.strengths)
    return grid


log = logging.getLogger(__name__)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both axes (both minimised), by x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best_y = [], float("inf")
    for i in order:
        if points[i][1] < best_y:
            front.append(i)
            best_y = points[i][1]
    return front


def grid_name(recipe: str, k: int, alpha: float) -> str:
    return f"{recipe}-k{k}-a{alpha:g}"


def eigenshift_fits(
    lm: LanguageModel, base: EigenShiftConfig, recipes: Sequence[Recipe], states: FitStates
) -> dict[str, EigenShiftFit]:
    """One fit per recipe, all on the same gathered states."""
    return {recipe: EigenShift.fit_statistics(lm, replace(base, recipe=recipe), states)
            for recipe in recipes}  # fmt: skip


def eigenshift_grid(
    fits: Mapping[str, EigenShiftFit], ks: Sequence[int], alphas: Sequence[float]
) -> dict[str, Intervention]:
    return {grid_name(name, k, a): fit.intervention(k, a)
            for name, fit in fits.items() for k in ks for a in alphas}  # fmt: skip


def strength_grid(
    name: str, intervention: Intervention, strengths: Sequence[float]
) -> dict[str, Intervention]:
    """One point per strength for methods that have that knob (steering, transport); others as
    fitted."""
    if "strength" not in intervention.knobs or not strengths:
        return {name: intervention}
    return {f"{name}-s{s:g}": intervention.with_params(strength=float(s)) for s in strengths}


def run_sweep(
    lm: LanguageModel,
    grid: Mapping[str, Intervention],
    eval_config: EvalConfig,
    out: str | Path,
    *,
    ppl_limit: float = 0.10,
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
    rows = metrics["methods"]
    points = [(r["perplexity"], r["toxic_fraction"]) for r in rows]
    front = [rows[i]["method"] for i in pareto_front(points)]
    eligible = [
        r for r in rows
        if r["method"] != ORIGINAL and r["relative_perplexity"] <= ppl_limit
        and not r.get("flag_degenerate")
    ]  # fmt: skip
    best = max(eligible, key=lambda r: r["tph"]) if eligible else None
    keys = (
        "toxic_fraction", "expected_max_toxicity", "perplexity", "relative_perplexity",
        "relative_expected_max_toxicity", "tph", "degenerate_share", "flag_degenerate",
    )  # fmt: skip
    summary = {
        "grid": [{"method": r["method"], **{k: r[k] for k in keys if k in r}} for r in rows],
        "pareto_front": front,
        "ppl_limit": ppl_limit,
        "best": best["method"] if best else None,
        "best_reason": (
            f"highest TPH ({best['tph']:.1f}) with perplexity within +{100 * ppl_limit:.0f}% and "
            "no significant rise in degenerate continuations"
            if best
            else f"no grid point keeps perplexity within +{100 * ppl_limit:.0f}% without more "
            "degenerate text"
        ),
    }
    if best:
        grid[best["method"]].save(run.file(RunFolder.BEST))
    run.write_json(RunFolder.SWEEP, summary)
    _plot(rows, front, best["method"] if best else None, run.file(RunFolder.PARETO))
    write_report(run.path)
    return summary


def _plot(rows, front, best, path: Path) -> None:
    from ..report.figures import plt  # matplotlib loads only when a figure is drawn

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for r in rows:
        marker = "s" if r["method"] == ORIGINAL else "o"
        color = "C3" if r.get("flag_degenerate") else ("C2" if r["method"] == best else "C0")
        ax.scatter(r["perplexity"], 100 * r["toxic_fraction"], marker=marker, color=color)
        ax.annotate(r["method"], (r["perplexity"], 100 * r["toxic_fraction"]), fontsize=6)
    pts = sorted((r["perplexity"], 100 * r["toxic_fraction"]) for r in rows if r["method"] in front)
    ax.plot([p[0] for p in pts], [p[1] for p in pts], "k--", linewidth=0.8, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("perplexity on clean text (log)")
    ax.set_ylabel("toxic continuations (%)")
    ax.set_title("sweep: green = best TPH under the limit, red = degenerate")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
