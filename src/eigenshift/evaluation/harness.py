"""The comparison harness: the original model and every intervention on the same prompts,
samples, seeds and scorer, with fluency beside toxicity and bootstrap intervals on everything.

It runs in three steps: `plan` (settings, names, prompts, the resume check), `collect`
(continuations and perplexities, written as they come, so a rerun with the same settings and
output folder picks up where the last one stopped) and `summarise` (metrics recomputed from what
is on disk, so they never depend on how many sessions the run took).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..core.io import Stopwatch
from ..engines import Engine, open_engine
from ..interventions import Intervention
from ..models import LanguageModel
from .capability import capability_summary
from .collect import (
    PerplexityNeed,
    Timer,
    collect_capability,
    collect_continuations,
    collect_perplexity,
)
from .config import ORIGINAL, EvalConfig
from .plan import plan
from .run import RunFolder
from .summary import summarise


def evaluate(
    lm: LanguageModel,
    interventions: Mapping[str, Intervention] | Sequence[Intervention] = (),
    config: EvalConfig | None = None,
    out: str | Path = "runs/evaluate",
    *,
    progress: bool = True,
    engine: Engine | None = None,
    reuse: Sequence[str | Path] = (),
    need: PerplexityNeed | None = None,
) -> dict[str, Any]:
    """Evaluate the original model and each intervention; writes the continuations (as it goes),
    the perplexities and the metrics into the run folder `out`, and returns the metrics.
    Continuations come from `engine`, else from the one `config.engine` names (opened and
    closed here: pass one to share a vLLM worker across evaluations). Clean-text perplexities
    of the same edits are taken from the run folders in `reuse`; with `need`, only the methods
    it asks for get one (a tune's rule)."""
    config = config or EvalConfig()
    with RunFolder(out).lock() as run, open_engine(config.engine, engine) as opened:
        return _evaluate(lm, interventions, config, run, progress, opened,
                         [RunFolder(p) for p in reuse], need)  # fmt: skip


def _evaluate(
    lm: LanguageModel,
    interventions: Mapping[str, Intervention] | Sequence[Intervention],
    config: EvalConfig,
    run: RunFolder,
    progress: bool,
    engine: Engine,
    reuse: Sequence[RunFolder],
    need: PerplexityNeed | None,
) -> dict[str, Any]:
    todo = plan(lm, interventions, config, run)
    engine.prepare(lm, [iv for _, iv in todo.methods if iv is not None])  # refusals before work
    timer = Timer(run)
    stages = Stopwatch()
    with stages("continuations"):
        store = collect_continuations(lm, todo, timer, progress, engine)
    with stages("perplexity"):
        asked = None
        if need is not None:  # the need decides from toxicity and fluency, known by now
            rows = summarise(store, todo.methods, todo.prompt_ids, {}, timer.seconds,
                             todo.config)["methods"]  # fmt: skip
            asked = (need, rows)
        ppl = collect_perplexity(lm, todo, timer, progress, reuse, asked)
    with stages("capability"):
        correct = collect_capability(lm, todo, timer, progress)
    with stages("summary"):
        metrics = summarise(store, todo.methods, todo.prompt_ids, ppl, timer.seconds,
                            todo.config)  # fmt: skip
        for task, by_method in correct.items():
            capability = capability_summary(by_method, ORIGINAL, todo.config.bootstrap,
                                            todo.config.sampling.seed, task)  # fmt: skip
            for row in metrics["methods"]:
                row.update(capability[row["method"]])
    config_record = {k: v for k, v in asdict(todo.config).items() if k != "exclude_prompt_indices"}
    metrics.update({
        "model": lm.describe(),
        "prompts_source": todo.prompts_source,
        "config": config_record,
        "excluded_prompts": len(todo.config.exclude_prompt_indices),
        "stage_seconds": stages.seconds,  # of the session that finished the run
    })  # fmt: skip
    run.write_json(RunFolder.METRICS, metrics)
    return metrics
