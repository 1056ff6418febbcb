"""The main job on the embedded defaults: fit EigenShift on fit prompts, evaluate the original
model and EigenShift on other prompts, explain the removed directions, write the report."""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .evaluation import EvalConfig, evaluate
from .explain import write_explanation
from .interventions import EigenShift, EigenShiftConfig, load_intervention
from .models import LanguageModel, load_model
from .report import write_report

log = logging.getLogger(__name__)

DEMO = EvalConfig(max_prompts=200, samples=4, clean_texts=300)
QUICK = EvalConfig(max_prompts=40, samples=2, clean_texts=60, bootstrap=500)
FIT = EigenShiftConfig()
QUICK_FIT = replace(FIT, fit_prompts=120)


def fitted(lm: LanguageModel, config: EigenShiftConfig, folder: Path) -> EigenShift:
    """The artifact in `folder` if it was fitted on this model with this config, else a new fit."""
    try:
        existing = load_intervention(folder, lm)
        if isinstance(existing, EigenShift) and existing.params["fit_config"] == asdict(config):
            log.info("reusing the EigenShift fit in %s", folder)
            return existing
    except ArtifactError:
        pass
    intervention = EigenShift.fit(lm, config)
    intervention.save(folder)
    return intervention


def run_demo(
    out: Path = Path("runs/demo"), quick: bool = False, model: str = "default", **overrides: Any
) -> tuple[dict[str, Any], dict[str, Path]]:
    lm = load_model(model)
    intervention = fitted(lm, QUICK_FIT if quick else FIT, out / "eigenshift")
    write_explanation(lm, intervention, out)
    config = replace(QUICK if quick else DEMO, **overrides)
    metrics = evaluate(lm, {"eigenshift": intervention}, config, out)  # excludes fit prompts
    return metrics, write_report(out)
