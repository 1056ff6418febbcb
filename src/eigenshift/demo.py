"""The main job on the embedded defaults. For now: the original default model evaluated on the
embedded RealToxicityPrompts prompts with the full harness and report; the EigenShift issue adds
the fit and the comparison."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from .evaluation import EvalConfig, evaluate
from .models import load_model
from .report import write_report

DEMO = EvalConfig(max_prompts=200, samples=4, clean_texts=300)
QUICK = EvalConfig(max_prompts=40, samples=2, clean_texts=60, bootstrap=500)


def run_demo(
    out: Path = Path("runs/demo"), quick: bool = False, model: str = "default", **overrides: Any
) -> tuple[dict[str, Any], dict[str, Path]]:
    config = replace(QUICK if quick else DEMO, **overrides)
    lm = load_model(model)
    metrics = evaluate(lm, {}, config, out)
    return metrics, write_report(out)
