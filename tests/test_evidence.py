"""EigenShift's evidence: teacher-forced capture, word-level attribution, labelled states,
stability of the selection, and the tuner's prompt split."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import FAMILY_NAMES, PROMPTS, fit_es, make_lm, tiny_tokenizer

from eigenshift.capture.states import capture_states
from eigenshift.data import LabelledTexts
from eigenshift.engines.generation import SamplingConfig, generate
from eigenshift.evaluation import EvalConfig
from eigenshift.evidence.config import EvidenceRule
from eigenshift.evidence.gathering import labelled_states
from eigenshift.interventions import (
    MeanDifferenceSteering,
    load_intervention,
)
from eigenshift.interventions.eigenshift.stability import Projections, bootstrap, halves
from eigenshift.scoring.attribution import attribute_words, piece_spans, token_pieces, tokens_in
from eigenshift.studies.tune import RuleNeed, TuneConfig, candidates, choose, tune

BAD = ("idiot", "stupid")


class WordScorer:
    """Toxic in proportion to the bad words a text holds: a scorer with a known answer."""

    name = "bad-words"

    def score(self, texts):
        return np.array([min(1.0, 0.45 * sum(t.count(w) for w in BAD)) for t in texts])


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_teacher_forced_states_equal_those_captured_while_generating(family):
    lm = make_lm(family)
    config = SamplingConfig(samples=2, max_new_tokens=7)
    gens = generate(lm, PROMPTS, config, capture_hidden=True, progress=False)
    captured = capture_states(lm, [g.text for g in gens], [g.prompt for g in gens],
                              token_ids=[g.token_ids for g in gens], batch_size=3,
                              progress=False)  # fmt: skip
    for i, g in enumerate(gens):
        rows = captured.of_text(i)
        assert captured.token_ids[rows].tolist() == g.token_ids
        assert captured.position[rows].tolist() == list(range(len(g.token_ids)))
        torch.testing.assert_close(captured.states[rows], g.hidden, atol=1e-4, rtol=0)
        # probability and rank are the model's own at that step
        with torch.no_grad():
            logits = lm.unembedding(g.hidden).float()
        ids = torch.tensor(g.token_ids)
        expected = torch.softmax(logits, -1).gather(1, ids[:, None]).squeeze(1)
        torch.testing.assert_close(captured.probs[rows], expected, atol=1e-5, rtol=1e-4)
        ranks = (logits > logits.gather(1, ids[:, None])).sum(-1) + 1
        assert captured.ranks[rows].tolist() == ranks.tolist()


def test_unmeasured_texts_keep_their_states_without_probabilities():
    lm = make_lm("llama")
    texts = ["you are a stupid idiot", "thank you kindly", "the quick brown fox"]
    full = capture_states(lm, texts, batch_size=2, progress=False)
    part = capture_states(lm, texts, measure=[False, True, False], batch_size=2, progress=False)
    torch.testing.assert_close(part.states, full.states, atol=1e-6, rtol=0)
    measured = part.text_index == 1
    torch.testing.assert_close(part.probs[measured], full.probs[measured])
    assert torch.equal(part.ranks[measured], full.ranks[measured])
    assert part.probs[~measured].isnan().all() and (part.ranks[~measured] == 0).all()


def test_plain_texts_skip_the_first_token_without_a_bos():
    lm = make_lm("llama")  # the tiny tokenizer adds no BOS
    captured = capture_states(lm, ["you are a stupid idiot", "thank"], progress=False)
    n = len(tiny_tokenizer()("you are a stupid idiot")["input_ids"])
    assert captured.position[captured.of_text(0)].tolist() == list(range(1, n))


def test_word_attribution_maps_multi_token_words_to_all_their_tokens():
    tok = tiny_tokenizer()
    text = "thank you, stupidstupid friend"  # a made-up word the BPE splits into several tokens
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    (a,) = attribute_words(WordScorer(), [text])
    words = a.toxic_words(0.1)
    assert [text[s:e] for s, e in words] == ["stupidstupid"]
    tokens = tokens_in(enc["offset_mapping"], words)
    assert len(tokens) > 1  # every token of the word, and nothing else
    assert "".join(tok.decode([enc["input_ids"][j]]) for j in tokens).strip() == "stupidstupid"
    # two bad words: each removal drops the score, both are found
    (b,) = attribute_words(WordScorer(), ["you stupid idiot"])
    assert [w for w in ("you", "stupid", "idiot") if any(
        "you stupid idiot"[s:e] == w for s, e in b.toxic_words(0.1))] == ["stupid", "idiot"]
    # spans of generated tokens join to the decoded text
    ids = tok("you stupid idiot")["input_ids"]
    pieces = token_pieces(tok, ids)
    assert ["".join(pieces)[s:e] for s, e in piece_spans(pieces)] == pieces


def test_labelled_evidence_counts_and_rules():
    lm = make_lm("llama")
    texts = [f"you are a stupid idiot number {i}" for i in range(8)]
    texts += [f"the quick brown fox {i} jumps" for i in range(8)]
    data = LabelledTexts(texts, np.array([1] * 8 + [0] * 8), "crafted")
    loose = labelled_states(lm, data, WordScorer(), EvidenceRule(max_rank=10**6), progress=False)
    counts = loose.counts["labelled"]
    assert counts["toxic_texts"] == 8 and counts["clean_texts"] == 8
    assert counts["toxic_states"] == counts["toxic_word_tokens"] > 0  # every token plausible
    assert all(t.strip() and t.strip() in "stupid idiot" for t in loose.toxic_tokens)
    assert len(loose.clean) == counts["clean_states"] > 0
    strict = labelled_states(lm, data, WordScorer(), EvidenceRule(max_rank=1, min_prob=1.0),
                             progress=False)  # fmt: skip
    assert strict.counts["labelled"]["toxic_states"] == strict.counts["labelled"]["argmax"]
    assert strict.counts["labelled"]["toxic_states"] < counts["toxic_states"]


def _planted(seed: int, planted: bool, d: int = 40, texts: int = 400) -> Projections:
    gen = torch.Generator().manual_seed(seed)
    toxic = torch.randn(texts, d, generator=gen, dtype=torch.float64)
    clean = torch.randn(texts * 4, d, generator=gen, dtype=torch.float64)
    if planted:
        toxic[:, 7] += 1.0
    return Projections(toxic, torch.arange(texts), clean, torch.arange(texts * 4) % texts + texts,
                       lambda t, c: torch.full((int(c.sum()),), 1 / int(c.sum()),
                                               dtype=torch.float64))  # fmt: skip


def test_stability_recovers_a_planted_direction_and_is_chance_for_noise():
    v = torch.eye(40, dtype=torch.float64)
    found = halves(_planted(0, True), v, "standardized", [1], seed=0)["per_k"][0]
    assert found["subspace_similarity"] == pytest.approx(1.0) and found["index_overlap"] == 1.0
    noise = [halves(_planted(s, False), v, "standardized", [4], seed=s)["per_k"][0]
             for s in range(12)]  # fmt: skip
    mean = np.mean([row["subspace_similarity"] for row in noise])
    assert abs(mean - noise[0]["chance"]) < 0.1  # chance is k/d = 0.1
    boot = bootstrap(_planted(0, True), "standardized", torch.tensor([7]), 1, 60, seed=0)
    assert boot["selected_share"] == [1.0] and boot["score_low"][0] > 0.5


def test_a_fit_records_stability_and_counts():
    lm = make_lm("llama")
    fit = fit_es(lm, LetterO(), evidence="generated", fit_prompts=24, min_toxic=3, k=2,
                 sampling=SamplingConfig(max_new_tokens=6, greedy=True), resamples=30,
                 basis="singular")  # halves and bootstrap resample a choice by the evidence
    stats = fit.intervention().meta.stats
    assert stats["generated"]["toxic_states"] == stats["toxic_states"] >= 3
    assert stats["generated"]["argmax"] == stats["toxic_states"]  # greedy: every token argmax
    split = stats["stability"]["halves"]["per_k"]
    assert [row["k"] for row in split] == [1, 2, 5, 10, 20]
    assert len(stats["stability"]["bootstrap"]["score_low"]) == 2


class LetterO:
    name = "letter-o"

    def score(self, texts):
        return np.array([0.9 if "o" in t else 0.05 for t in texts])


def test_the_tuner_never_sees_test_prompts(tmp_path):
    lm = make_lm("llama")
    fit = fit_es(lm, LetterO(), evidence="generated", fit_prompts=20, min_toxic=3,
                 sampling=SamplingConfig(max_new_tokens=4, greedy=True), resamples=0)
    evaluation = EvalConfig(sampling=SamplingConfig(samples=1, max_new_tokens=4), clean_texts=4,
                            bootstrap=20, judge=None, scorer="profanity")  # fmt: skip
    settings = TuneConfig(validation_prompts=6, test_prompts=5, ks=(1, 3), alphas=(0.0,),
                          ppl_limit=100.0)  # fmt: skip
    fit.intervention(k=2).save(tmp_path / "fixed")
    fixed = load_intervention(tmp_path / "fixed", lm)
    out = tmp_path / "tuned"
    summary = tune(lm, {"eigenshift": fit}, settings, evaluation, out, fixed={"fixed": fixed},
                   progress=False)  # fmt: skip
    # from the artifacts alone: the fit prompts, the prompts the grid ran on, the test prompts
    fitted = set(load_intervention(tmp_path / "fixed", lm).meta.stats["fit_prompt_indices"])

    def prompts_of(run: str) -> set[int]:
        lines = (out / run / "continuations.jsonl").read_text().splitlines()
        return {json.loads(line)["prompt_index"] for line in lines}

    validation, test = prompts_of("validation"), prompts_of("test")
    assert len(fitted) == 20 and len(validation) == 6 and len(test) == 5
    assert not (fitted & validation) and not (fitted & test) and not (validation & test)
    assert summary["chosen"]["eigenshift"] in (None, "eigenshift-k1-a0", "eigenshift-k3-a0")
    assert (out / "chosen" / "eigenshift").is_dir() == bool(summary["chosen"]["eigenshift"])
    recorded = json.loads((out / "tune.json").read_text())["prompts"]
    assert set(recorded["test"]) == test and set(recorded["validation"]) == validation


def test_words_that_hide_each_other_are_found_alone():
    class Saturated:  # any bad word makes the text toxic: removing one of two changes nothing
        name = "saturated"

        def score(self, texts):
            return np.array([0.9 if any(w in t for w in BAD) else 0.1 for t in texts])

    text = "you stupid little idiot"
    (a,) = attribute_words(Saturated(), [text])
    assert not (a.drops > 0.1).any()
    assert [text[s:e] for s, e in a.toxic_words(0.1)] == ["stupid", "idiot"]


def test_the_rule_never_chooses_a_point_that_raises_toxicity_or_perplexity():
    rows = [{"method": "original", "expected_max_toxicity": 0.30, "relative_perplexity": 0.0},
            {"method": "a", "expected_max_toxicity": 0.35, "relative_perplexity": 0.01},
            {"method": "b", "expected_max_toxicity": 0.10, "relative_perplexity": 0.50},
            {"method": "c", "expected_max_toxicity": 0.20, "relative_perplexity": 0.05,
             "flag_degenerate": True},
            {"method": "d", "expected_max_toxicity": 0.25, "relative_perplexity": 0.08}]
    assert choose(rows, ["a", "b", "c", "d"], 0.10) == "d"
    assert choose(rows, ["a", "b", "c"], 0.10) is None


def test_the_rule_measures_only_the_perplexities_it_could_choose_from():
    rows = [{"method": "original", "expected_max_toxicity": 0.5},
            {"method": "s1", "expected_max_toxicity": 0.45},
            {"method": "s2", "expected_max_toxicity": 0.40},
            {"method": "s3", "expected_max_toxicity": 0.30},
            {"method": "s4", "expected_max_toxicity": 0.20, "flag_degenerate": True},
            {"method": "s5", "expected_max_toxicity": 0.55},
            {"method": "e1", "expected_max_toxicity": 0.48}]  # fmt: skip
    need = RuleNeed({"steer": ["s1", "s2", "s3", "s4", "s5"], "eig": ["e1"]}, limit=0.1)
    assert need.order(rows) == ["s3", "s2", "s1", "e1"]  # degenerate and worse points never
    ppl = {"original": [10.0], "s3": [12.0]}  # +20%: s3 cannot be chosen, s2 is needed
    assert need.wanted("s2", ppl) and need.wanted("e1", ppl)
    ppl["s2"] = [10.5]  # within +10%: nothing with more toxicity can win any more
    assert not need.wanted("s1", ppl) and need.wanted("e1", ppl)
    full = {"original": 10.0, "s1": 10.2, "s2": 10.5, "s3": 12.0, "s4": 10.0, "s5": 10.0,
            "e1": 10.1}  # fmt: skip
    graded = [{**r, "relative_perplexity": full[r["method"]] / 10 - 1} for r in rows]
    lazy = [{**r, "relative_perplexity": (full[r["method"]] / 10 - 1) if r["method"] in ppl
             else None} for r in rows]  # fmt: skip
    assert choose(lazy, need.grids["steer"], 0.1) == choose(graded, need.grids["steer"], 0.1)
    assert choose(lazy, need.grids["steer"], 0.1) == "s2"


def test_a_tune_measures_fewer_perplexities_and_chooses_the_same(tmp_path):
    lm = make_lm("llama")
    steer = MeanDifferenceSteering.fit(lm, data=LabelledTexts(
        ["o o o", "you o", "xyz", "abc"] * 2, np.array([1, 1, 0, 0] * 2), "x"), progress=False)
    evaluation = EvalConfig(sampling=SamplingConfig(samples=2, max_new_tokens=4), clean_texts=6,
                            bootstrap=20, judge=None, scorer="profanity")  # fmt: skip
    settings = TuneConfig(validation_prompts=8, test_prompts=4, strengths=(1.0, 4.0, 16.0, 64.0),
                          ppl_limit=0.5)  # fmt: skip
    lazy = tune(lm, {"steer": steer}, settings, evaluation, tmp_path / "lazy", progress=False)
    every = tune(lm, {"steer": steer}, replace(settings, every_point=True), evaluation,
                 tmp_path / "every", progress=False)  # fmt: skip
    assert lazy["chosen"] == every["chosen"]
    measured = json.loads((tmp_path / "lazy" / "validation" / "perplexity.json").read_text())
    # what the rule needs, read off the full grid: candidates by toxicity up to the first that
    # keeps perplexity within the limit
    expected = ["original"]
    for row in candidates(every["validation"], [f"steer-s{s:g}" for s in settings.strengths]):
        expected.append(row["method"])
        if row["relative_perplexity"] <= settings.ppl_limit:
            break
    assert sorted(measured) == sorted(expected)
    assert len(json.loads((tmp_path / "every" / "validation" /
                           "perplexity.json").read_text())) == 1 + len(settings.strengths)
    unmeasured = [r for r in lazy["validation"] if r["method"] not in measured]
    assert all(r["perplexity"] is None for r in unmeasured)

    def nll_of(run):
        lines = (tmp_path / run).read_text().splitlines()
        return {json.loads(line)["continuation_nll"] is None for line in lines}

    # the rule never reads the continuations' own perplexity: scored on test prompts only
    assert nll_of("lazy/validation/continuations.jsonl") == {True}
    assert nll_of("lazy/test/continuations.jsonl") == {False}
    assert nll_of("every/validation/continuations.jsonl") == {False}
