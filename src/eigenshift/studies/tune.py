"""`tune`: choose each method's operating point on validation prompts by one declared rule, then
evaluate the chosen points once on separate test prompts.

The prompt file is split, after the fit prompts of every candidate are taken out, into a seeded
validation set and a disjoint test set; the grid runs on validation only, so the test figures
are what a user who tuned this way can expect on prompts nobody looked at. The rule: the largest
drop in expected maximum toxicity among points whose perplexity rises at most `ppl_limit` and
whose degenerate share does not rise significantly. `sweep` stays the exploratory view.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.io import atomic_folder
from ..core.settings import resume_settings
from ..data import load_prompts
from ..engines import Engine, open_engine
from ..evaluation import ORIGINAL, EvalConfig, RunFolder, evaluate
from ..evaluation.config import task_measure
from ..evaluation.plan import fit_prompt_ids
from ..evaluation.summary import finite
from ..interventions import EigenShiftFit, Intervention
from ..models import LanguageModel
from .configs import TuneConfig
from .points import (
    TUNE_COLUMNS,
    LowestToxicityWithinPerplexity,
    disjoint_grids,
    method_points,
    points_of,
)

log = logging.getLogger(__name__)


def method_grid(
    name: str, method: EigenShiftFit | Intervention, config: TuneConfig
) -> dict[str, Intervention]:
    """The points of one method: EigenShift's k x alpha from its fit, a strength per value for
    methods with a strength, the fitted point alone otherwise."""
    return method_points(name, method, config.ks, config.alphas, config.strengths)


def tune_settings(config: TuneConfig) -> dict[str, Any]:
    """What a resumed tune must share with the one it continues: its grid and rule (the
    evaluations' own settings are checked by validation/ and test/)."""
    return {f"tune.{k}": v for k, v in resume_settings(config).items()}


def split_prompts(
    n_prompts: int, fitted: set[int], config: TuneConfig, seed: int
) -> tuple[list[int], list[int]]:
    """Seeded, disjoint validation and test indices, none of them a fit prompt."""
    order = [int(i) for i in np.random.default_rng(seed).permutation(n_prompts) if i not in fitted]
    need = config.validation_prompts + config.test_prompts
    if len(order) < need:
        raise InputError(f"{len(order)} prompts are left after the fit prompts, and tuning "
                         f"needs {need} (validation + test): use fewer, or a larger prompt "
                         "file")  # fmt: skip
    val = order[: config.validation_prompts]
    return val, order[config.validation_prompts : need]


def only(config: EvalConfig, ids: Sequence[int], n_prompts: int) -> EvalConfig:
    keep = set(ids)
    return replace(config, max_prompts=len(ids),
                   exclude_prompt_indices=tuple(i for i in range(n_prompts) if i not in keep))


def choose(rows: Sequence[dict[str, Any]], names: Sequence[str], limit: float) -> str | None:
    """The rule on metrics rows; None when no point within the limits lowers expected maximum
    toxicity."""
    return LowestToxicityWithinPerplexity(limit).choose(points_of(rows), names)


def candidates(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of the points of `names` the rule may choose before perplexity is known, the
    lowest expected maximum toxicity first (`LowestToxicityWithinPerplexity.candidates`)."""
    by_method = {r["method"]: r for r in rows}
    found = LowestToxicityWithinPerplexity.candidates(points_of(rows), names)
    return [by_method[p.method] for p in found]


@dataclass
class RuleNeed:
    """The perplexities the rule needs: each method's candidates in order of expected maximum
    toxicity, up to the first within the perplexity limit. A point with higher toxicity can
    never be chosen over it, so the choice is the one the whole grid gives."""

    grids: dict[str, list[str]]
    limit: float
    family: dict[str, str] = field(init=False)
    rule: LowestToxicityWithinPerplexity = field(init=False)

    def __post_init__(self) -> None:
        self.family = {p: name for name, points in self.grids.items() for p in points}
        self.rule = LowestToxicityWithinPerplexity(self.limit)

    def order(self, rows: list[dict[str, Any]]) -> list[str]:
        points = points_of(rows)
        return [p.method for names in self.grids.values()
                for p in self.rule.candidates(points, names)]  # fmt: skip

    def wanted(self, name: str, measured: dict[str, list[float]]) -> bool:
        base = finite(measured[ORIGINAL]).mean()
        return not any(p in measured and finite(measured[p]).mean() <= base * (1 + self.limit)
                       for p in self.grids[self.family[name]])  # fmt: skip


def tune(
    lm: LanguageModel,
    methods: Mapping[str, EigenShiftFit | Intervention],
    config: TuneConfig,
    evaluation: EvalConfig,
    out: str | Path,
    *,
    fixed: Mapping[str, Intervention] | None = None,
    progress: bool = True,
    engine: Engine | None = None,
) -> dict[str, Any]:
    """Grid on validation prompts, one chosen point per method, evaluated on test prompts (with
    the `fixed` methods as they are, untuned); writes validation/, test/, chosen/METHOD/ and
    tune.json under `out`. Both evaluations share `engine` (default: the one `evaluation`
    names)."""
    with RunFolder(out).lock() as run, open_engine(evaluation.engine, engine) as opened:
        return _tune(lm, methods, dict(fixed or {}), config, evaluation, run, progress, opened)


def _tune(
    lm: LanguageModel,
    methods: Mapping[str, EigenShiftFit | Intervention],
    fixed: dict[str, Intervention],
    config: TuneConfig,
    evaluation: EvalConfig,
    run: RunFolder,
    progress: bool,
    engine: Engine,
) -> dict[str, Any]:
    head = lm.weight_hash(lm.arch.unembedding)
    run.resume({"settings": tune_settings(config), "methods": {},
                "model": {"name": lm.name, "unembedding_hash": head}})  # fmt: skip
    grids = disjoint_grids(methods, lambda name, m: method_grid(name, m, config),
                           taken=(ORIGINAL, *fixed))  # fmt: skip
    points = {point: iv for grid in grids.values() for point, iv in grid.items()}
    prompts = load_prompts(evaluation.prompts)
    fitted = fit_prompt_ids([*points.values(), *fixed.values()], prompts.hash())
    val, test = split_prompts(len(prompts), fitted, config, evaluation.prompt_seed)
    # The rule reads toxicity, degenerate text and clean-text perplexity: the continuations'
    # own perplexity is only scored on test prompts (and with --every-point).
    # capability too is measured on the chosen points alone (the rule does not read it)
    val_eval = only(replace(evaluation, continuation_nll=config.every_point, capability=0,
                            sampling=replace(evaluation.sampling,
                                             samples=config.validation_samples)),
                    val, len(prompts))  # fmt: skip
    need = None if config.every_point else RuleNeed({n: list(g) for n, g in grids.items()},
                                                    config.ppl_limit)  # fmt: skip
    validation = evaluate(lm, points, val_eval, run.path / "validation", progress=progress,
                          engine=engine, need=need)  # fmt: skip
    rule = LowestToxicityWithinPerplexity(config.ppl_limit)
    validated = points_of(validation["methods"])
    chosen = {name: rule.choose(validated, grid) for name, grid in grids.items()}
    with atomic_folder(run.path / "chosen") as folder:  # as a whole: no earlier choice stays
        for name, point in chosen.items():
            log.info("%s: chose %s", name, point or "nothing (no point meets the rule)")
            if point:
                points[point].save(folder / name)
    finals = {name: points[point] for name, point in chosen.items() if point} | fixed
    tested = evaluate(lm, finals, only(evaluation, test, len(prompts)), run.path / "test",
                      progress=progress, engine=engine,
                      reuse=[run.path / "validation"])  # same texts: same perplexities  # fmt: skip
    tasks = evaluation.tasks if evaluation.capability else ()
    capability_keys = [k for t in tasks for k in (task_measure(t), f"{t}_change",
                                                  f"{t}_change_ci")]  # fmt: skip
    summary = {
        "rule": rule.describe(),
        "prompts": {"fit": sorted(fitted), "validation": sorted(val), "test": sorted(test)},
        "chosen": chosen,
        "untuned": sorted(fixed),
        "validation": [p.as_dict(TUNE_COLUMNS) for p in validated],
        "test": [p.as_dict(TUNE_COLUMNS) for p in points_of(tested["methods"])],
        # each chosen point's accuracy on each capability task, its change with an interval
        "capability": {row["method"]: {key: row[key] for key in capability_keys if key in row}
                       for row in tested["methods"]},
        "frontier": RunFolder.FRONTIER,
    }
    run.write_json(RunFolder.TUNE, summary)  # before the figure: a drawing error loses no result
    from ..report.figures import frontier  # matplotlib loads only when a tune draws

    frontier(validation, tested, {name: list(grid) for name, grid in grids.items()}, chosen,
             config.ppl_limit, run.file(RunFolder.FRONTIER))  # fmt: skip
    return summary
