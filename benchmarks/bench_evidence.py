"""Toxic states per CPU-second: teacher-forced labelled evidence against generate-and-capture.

Side by side in one run on the default model (float32), CPU time of this process (both cores):
- before: greedy continuations of fit prompts, captured in the same pass, scored, token-level
  occlusion, and the argmax check (the fit before issue 12);
- generated: the same continuations through the current path (generate, then teacher-forced
  capture, word-level attribution, the plausibility rule);
- labelled: the insults data teacher-forced (toxic texts up to their last toxic word, a clean
  budget), word-level attribution, the plausibility rule.
Then capture alone on the same continuations: in the generation pass against generating without
it and capturing teacher-forced afterwards (what decides whether same-pass capture stays).

    python benchmarks/bench_evidence.py [--prompts 150 --texts 2000 --clean-budget 40000]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from eigenshift import load_model
from eigenshift.capture.states import capture_states
from eigenshift.data import load_labelled, load_prompts
from eigenshift.engines.generation import SamplingConfig, generate
from eigenshift.evidence.gathering import EvidenceRule, generated_states, labelled_states
from eigenshift.scoring import attribute_tokens, load_scorer


def cpu_timed(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def before(lm, texts, ids, sampling, scorer) -> int:
    """The previous fit's evidence: same-pass capture, token occlusion, argmax check."""
    gens = generate(lm, texts, sampling, prompt_ids=ids, capture_hidden=True, progress=False)
    scores = scorer.score([g.text for g in gens])
    toxic = [i for i, g in enumerate(gens) if scores[i] >= 0.5 and g.token_ids]
    tops = attribute_tokens(scorer, lm.tokenizer, [gens[i].token_ids for i in toxic])
    kept = 0
    with torch.inference_mode():
        for i, a in zip(toxic, tops, strict=True):
            if a.top >= 0:
                h = gens[i].hidden[a.top : a.top + 1]
                kept += int(lm.unembedding(h).argmax(-1).item() == gens[i].token_ids[a.top])
    return kept


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=150)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--clean-budget", type=int, default=EvidenceRule().clean_budget)
    args = parser.parse_args()
    torch.manual_seed(0)
    lm = load_model("default")
    scorer = load_scorer("default")
    ids, texts = load_prompts("default").select(args.prompts, 0)
    sampling = SamplingConfig(greedy=True)
    rule = EvidenceRule(clean_budget=args.clean_budget)
    data = load_labelled("default", max_examples=args.texts)
    results = {}
    n, seconds = cpu_timed(lambda: before(lm, texts, ids, sampling, scorer))
    results["before_generate_capture"] = {"toxic_states": n, "cpu_seconds": round(seconds, 1)}
    states, seconds = cpu_timed(lambda: generated_states(lm, texts, ids, sampling, scorer, rule,
                                                         0.5, progress=False))  # fmt: skip
    results["generated_teacher_forced"] = {"toxic_states": len(states.toxic),
                                           "cpu_seconds": round(seconds, 1)}  # fmt: skip
    states, seconds = cpu_timed(lambda: labelled_states(lm, data, scorer, rule, progress=False))
    results["labelled_teacher_forced"] = {"toxic_states": len(states.toxic),
                                          "cpu_seconds": round(seconds, 1)}  # fmt: skip
    for row in results.values():
        row["states_per_cpu_second"] = round(row["toxic_states"] / row["cpu_seconds"], 3)
    # Capture alone, on the same continuations: in the generation pass, or teacher-forced after.
    gens, with_capture = cpu_timed(lambda: generate(lm, texts, sampling, prompt_ids=ids,
                                                    capture_hidden=True, progress=False))
    _, plain = cpu_timed(lambda: generate(lm, texts, sampling, prompt_ids=ids, progress=False))
    _, forced = cpu_timed(lambda: capture_states(
        lm, [g.text for g in gens], [g.prompt for g in gens],
        token_ids=[g.token_ids for g in gens], progress=False))
    results_capture = {"generate_with_capture": round(with_capture, 1),
                       "generate_then_teacher_forced": round(plain + forced, 1),
                       "teacher_forced_alone": round(forced, 1)}
    base = results["before_generate_capture"]["states_per_cpu_second"]
    ratio = results["labelled_teacher_forced"]["states_per_cpu_second"] / base
    out = {"benchmark": "evidence", "prompts": args.prompts, "texts": args.texts,
           "clean_budget": args.clean_budget, **results,
           "labelled_vs_before": round(ratio, 1), "target": ">= 10x",
           "capture_cpu_seconds": results_capture}  # fmt: skip
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
