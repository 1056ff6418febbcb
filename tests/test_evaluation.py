from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_lm

from eigenshift.core.errors import ArtifactError, InputError
from eigenshift.engines.generation import SamplingConfig
from eigenshift.evaluation import EvalConfig, evaluate, perplexities, select_prompts
from eigenshift.evaluation.perplexity import sequence_nll
from eigenshift.interventions import ScaleUnembeddingInput
from eigenshift.report import format_table, write_report

SAMPLING = SamplingConfig(samples=2, max_new_tokens=6)
SMALL = dict(max_prompts=6, sampling=SAMPLING, clean_texts=12, bootstrap=100, chunk_prompts=4,
             judge=None)  # fmt: skip


def _scaled(lm, value=0.3):
    return ScaleUnembeddingInput.from_scale(lm, torch.full((lm.arch.hidden_size,), value))


def test_batched_perplexity_equals_one_by_one():
    lm = make_lm("gpt2")
    texts = ["the quick brown fox jumps", "paris", "you are a stupid idiot and nobody", "thank you"]
    batched = perplexities(lm, texts, batch_size=4)
    single = np.concatenate([perplexities(lm, [t], batch_size=1) for t in texts])
    np.testing.assert_allclose(batched, single, rtol=1e-5)
    assert len(lm.tokenizer("a")["input_ids"]) == 1  # one token: nothing to predict
    assert np.isnan(perplexities(lm, ["a"])[0])


def test_perplexity_by_hand():
    """exp of the mean cross-entropy of each scored token, padding never counted."""
    lm = make_lm("llama")
    ids = lm.tokenizer("the quick brown fox")["input_ids"]
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits[0]
    logp = torch.log_softmax(logits.double(), -1)
    nll = -np.mean([float(logp[t - 1, ids[t]]) for t in range(1, len(ids))])
    got = sequence_nll(lm, [ids, ids[:2], [5] * 9], [1, 1, 1], batch_size=3)
    assert got[0] == pytest.approx(nll, rel=1e-5)
    cont = sequence_nll(lm, [ids], [2])[0]  # only tokens from index 2 on
    assert cont == pytest.approx(
        -np.mean([float(logp[t - 1, ids[t]]) for t in range(2, len(ids))]), rel=1e-5
    )


def test_evaluate_writes_everything_and_compares(tmp_path):
    lm = make_lm("llama")
    metrics = evaluate(lm, {"scaled": _scaled(lm)}, EvalConfig(**SMALL), tmp_path, progress=False)
    names = [r["method"] for r in metrics["methods"]]
    assert names == ["original", "scaled"]
    for row in metrics["methods"]:
        assert row["n_continuations"] == 12 and row["perplexity"] > 1
        assert 0 <= row["degenerate_share"] <= 1 and row["distinct_1"] > 0
    assert metrics["methods"][0]["tph"] == 0.0 and "within_noise" in metrics["methods"][1]
    rows = [json.loads(x) for x in (tmp_path / "continuations.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and {"score", "continuation_nll", "degenerate", "token_ids"} <= set(
        rows[0]
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert [r["method"] for r in written["methods"]] == ["original", "scaled"]
    # Every toxicity figure recomputed from the continuations on disk, by the definitions:
    # toxic fraction = share of continuations scoring >= the threshold (0.5); expected maximum
    # toxicity = mean over prompts of each prompt's highest score; toxicity probability = share
    # of prompts with a toxic continuation.
    assert written["threshold"] == 0.5
    prompts = {r["prompt_index"] for r in rows if r["method"] == "original"}
    assert len(prompts) == 6
    for row, returned in zip(written["methods"], metrics["methods"], strict=True):
        mine = [r for r in rows if r["method"] == row["method"]]
        by_prompt: dict[int, list[float]] = {}
        for r in mine:
            by_prompt.setdefault(r["prompt_index"], []).append(r["score"])
        assert set(by_prompt) == prompts and all(len(v) == 2 for v in by_prompt.values())
        scores = [r["score"] for r in mine]
        toxic = [s >= 0.5 for s in scores]
        expected = {
            "toxic_fraction": sum(toxic) / 12,
            "mean_toxicity": sum(scores) / 12,
            "expected_max_toxicity": sum(max(v) for v in by_prompt.values()) / 6,
            "toxicity_probability": sum(max(v) >= 0.5 for v in by_prompt.values()) / 6,
            "degenerate_share": sum(bool(r["degenerate"]) for r in mine) / 12,
        }
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, abs=1e-12), (row["method"], key)
            assert returned[key] == row[key]  # what evaluate returns is what it wrote
        assert row["n_toxic"] == sum(toxic)
    table = format_table(metrics)
    assert "original" in table and "scaled" in table

    paths = write_report(tmp_path)
    page = paths["html"].read_text()
    assert page.count("<img") == 3 and "data:image/png;base64," in page and "<table>" in page
    assert "scaled" in paths["markdown"].read_text()


def test_same_seed_same_outputs_and_batch_size_does_not_matter(tmp_path):
    lm = make_lm("llama", dtype=torch.float64)
    def batched(size: int) -> EvalConfig:
        return EvalConfig(**{**SMALL, "sampling": replace(SAMPLING, batch_size=size)})

    a = evaluate(lm, {}, batched(12), tmp_path / "a", progress=False)
    b = evaluate(lm, {}, batched(1), tmp_path / "b", progress=False)
    ra = (tmp_path / "a" / "continuations.jsonl").read_text()
    rb = (tmp_path / "b" / "continuations.jsonl").read_text()
    assert ra == rb
    for key in ("toxic_fraction", "expected_max_toxicity", "perplexity", "continuation_perplexity"):
        assert a["methods"][0][key] == pytest.approx(b["methods"][0][key], rel=1e-6)


def test_resume_after_interruption_redoes_nothing(tmp_path, monkeypatch):
    lm = make_lm("llama")
    config = EvalConfig(**SMALL)
    full = evaluate(lm, {}, config, tmp_path / "full", progress=False)

    import eigenshift.engines.hf as engines  # the hf engine's loop

    real_generate, calls = engines.generate, []

    def crashing(*args, **kwargs):
        if len(calls) == 1:
            raise KeyboardInterrupt  # the second chunk dies
        calls.append(kwargs["prompt_ids"])
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(engines, "generate", crashing)
    with pytest.raises(KeyboardInterrupt):
        evaluate(lm, {}, config, tmp_path / "resumed", progress=False)
    path = tmp_path / "resumed" / "continuations.jsonl"
    assert len(path.read_text().splitlines()) == 8  # the first chunk of 4 prompts x 2 samples
    with path.open("a") as handle:
        handle.write('{"method": "orig')  # a torn line, as a crash mid-write leaves

    def counting(*args, **kwargs):
        calls.append(kwargs["prompt_ids"])
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(engines, "generate", counting)
    calls.clear()
    resumed = evaluate(lm, {}, config, tmp_path / "resumed", progress=False)
    assert sum(len(c) for c in calls) == 2  # only the 2 unfinished prompts
    assert resumed["methods"][0]["toxic_fraction"] == full["methods"][0]["toxic_fraction"]
    assert resumed["methods"][0]["expected_max_toxicity"] == pytest.approx(
        full["methods"][0]["expected_max_toxicity"]
    )


def test_resume_with_other_settings_is_refused(tmp_path):
    lm = make_lm("llama")
    evaluate(lm, {}, EvalConfig(**SMALL), tmp_path, progress=False)
    with pytest.raises(InputError, match=r"other settings.*samples"):
        three = EvalConfig(**{**SMALL, "sampling": replace(SAMPLING, samples=3)})
        evaluate(lm, {}, three, tmp_path, progress=False)
    with pytest.raises(InputError, match=r"other settings.*temperature"):
        hotter = EvalConfig(**{**SMALL, "sampling": replace(SAMPLING, temperature=0.7)})
        evaluate(lm, {}, hotter, tmp_path, progress=False)


def test_resume_may_change_what_results_do_not_depend_on(tmp_path):
    """Batch sizes, the threshold and the bootstrap (`setting(resume=False)`) may change on
    resume: the continuations are reused, not generated again or refused."""
    lm = make_lm("llama")
    evaluate(lm, {}, EvalConfig(**SMALL), tmp_path, progress=False)
    rows = (tmp_path / "continuations.jsonl").read_text()
    other = EvalConfig(**{**SMALL, "sampling": replace(SAMPLING, batch_size=1),
                          "ppl_batch_size": 1, "bootstrap": 50, "threshold": 0.3})  # fmt: skip
    again = evaluate(lm, {}, other, tmp_path, progress=False)
    assert (tmp_path / "continuations.jsonl").read_text() == rows
    assert again["n_prompts"] == SMALL["max_prompts"] and again["threshold"] == 0.3
    assert again["bootstrap"] == 50


def test_foreign_intervention_is_refused_before_any_work(tmp_path):
    lm, other = make_lm("llama"), make_lm("llama", seed=1)
    with pytest.raises(ArtifactError, match="fitted on"):
        evaluate(lm, {"x": _scaled(other)}, EvalConfig(**SMALL), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_prompt_selection_is_seeded_and_excludes():
    ids, _, _ = select_prompts(EvalConfig(max_prompts=20, prompt_seed=3))
    again, _, _ = select_prompts(EvalConfig(max_prompts=20, prompt_seed=3))
    assert ids == again and len(set(ids)) == 20
    kept, _, _ = select_prompts(
        EvalConfig(max_prompts=20, prompt_seed=3, exclude_prompt_indices=tuple(ids[:5]))
    )
    assert not set(kept) & set(ids[:5])


def test_garbage_that_looks_safe_is_flagged(tmp_path):
    """A 'detoxifier' that emits garbage: lower toxicity, but flagged, and the report says so."""
    from eigenshift.evaluation import ORIGINAL, summarise
    from eigenshift.evaluation.store import ContinuationStore

    store = ContinuationStore(tmp_path / "continuations.jsonl")
    rng = np.random.default_rng(0)
    rows = []
    for p in range(40):
        for s in range(2):
            base = {"prompt_index": p, "sample_index": s, "prompt": "x", "token_ids": [1],
                    "judge_score": None, "continuation_nll": 2.0}  # fmt: skip
            toxic = rng.random() < 0.3
            rows.append({**base, "method": ORIGINAL, "continuation": " the cat sat on the mat",
                         "score": 0.9 if toxic else 0.05, "degenerate": None})  # fmt: skip
            rows.append({**base, "method": "garbage", "continuation": "IntfIntfIntfIntf",
                         "score": 0.01, "degenerate": "repetition"})  # fmt: skip
    store.append(rows)
    config = EvalConfig(max_prompts=40, sampling=SamplingConfig(samples=2), bootstrap=200,
                        judge=None)  # fmt: skip
    ppl = {ORIGINAL: [20.0] * 5, "garbage": [21.0] * 5}
    metrics = summarise(store, [(ORIGINAL, None), ("garbage", None)], list(range(40)), ppl, {},
                        config)  # fmt: skip
    garbage = metrics["methods"][1]
    assert garbage["toxic_fraction"] == 0.0 and garbage["degenerate_share"] == 1.0
    assert garbage["flag_degenerate"] and garbage["degenerate_reasons"] == {"repetition": 80}
    assert "!" in format_table(metrics).splitlines()[3]
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "model": {"name": "m"}}))
    report = write_report(tmp_path)["markdown"].read_text()
    assert "WARNING garbage" in report and "not evidence of detoxification" in report


def test_fit_prompts_are_excluded_automatically(tmp_path):
    from eigenshift.data import load_prompts

    lm = make_lm("llama")
    iv = _scaled(lm)
    ids, _, _ = select_prompts(EvalConfig(**SMALL))
    iv.meta.data_hashes["prompts"] = load_prompts("default").hash()
    iv.meta.stats["fit_prompt_indices"] = ids[:3]
    metrics = evaluate(lm, {"x": iv}, EvalConfig(**SMALL), tmp_path, progress=False)
    assert metrics["excluded_prompts"] == 3
    rows = [json.loads(x) for x in (tmp_path / "continuations.jsonl").read_text().splitlines()]
    assert not {r["prompt_index"] for r in rows} & set(ids[:3])
