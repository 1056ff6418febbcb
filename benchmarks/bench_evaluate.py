"""Evaluation throughput and the sampler, measured side by side in one run.

1. The whole evaluation (generate, score, fluency) of the default model, batched vs one prompt
   at a time (one sequence per forward pass), on the same prompts and seeds.
2. Exact top-p on the model's own next-token distributions: looking among the top 1,024
   candidates first vs sorting the whole vocabulary (same tokens drawn).

    .venv/bin/python benchmarks/bench_evaluate.py [--prompts 24] [--samples 4]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from common import timed

from eigenshift import SamplingConfig, load_model, load_prompts
from eigenshift.engines.generation import race_noise, sample_top_p
from eigenshift.evaluation import EvalConfig, evaluate


def sampler(lm, prompts: list[str], repeats: int = 20) -> dict[str, object]:
    """Exact top-p on the model's real next-token distributions: candidates vs full sort."""
    with torch.inference_mode():
        logits = lm.model(**lm.encode(prompts).model_inputs()).logits[:, -1].float()
    probs = torch.softmax(logits, -1)
    vocab = probs.shape[-1]
    gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
    noise = race_noise(gens, vocab)
    fast = sample_top_p(probs, noise, 0.95, candidates=1024)
    full = sample_top_p(probs, noise, 0.95, candidates=vocab)
    _, t_fast = timed(lambda: [sample_top_p(probs, noise, 0.95, 1024) for _ in range(repeats)])
    _, t_full = timed(lambda: [sample_top_p(probs, noise, 0.95, vocab) for _ in range(repeats)])
    return {
        "vocab": vocab,
        "rows": len(prompts),
        "rows_needing_full_sort": int((probs.topk(1024).values.sum(-1) < 0.95).sum()),
        "candidates_ms": round(1000 * t_fast / repeats, 2),
        "full_sort_ms": round(1000 * t_full / repeats, 2),
        "ratio": round(t_full / t_fast, 2),
        "identical_tokens": bool(torch.equal(fast, full)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    lm = load_model(args.model, device=args.device)
    base = EvalConfig(max_prompts=args.prompts, sampling=SamplingConfig(samples=args.samples),
                      clean_texts=1, bootstrap=100, judge="profanity")  # fmt: skip
    runs = {}
    for name, batch in (("batched", args.batch_size), ("one_at_a_time", 1)):
        config = replace(base, sampling=replace(base.sampling, batch_size=batch),
                         chunk_prompts=max(1, batch // args.samples))  # fmt: skip
        with tempfile.TemporaryDirectory() as out:
            metrics, seconds = timed(lambda c=config, o=out: evaluate(lm, {}, c, o, progress=False))
            text = Path(out, "continuations.jsonl").read_text()
        runs[name] = {"seconds": round(seconds, 2), "metrics": metrics["methods"][0], "text": text}
    b, one = runs["batched"], runs["one_at_a_time"]

    def tokens(text: str) -> list[tuple]:
        rows = [json.loads(line) for line in text.splitlines()]
        return sorted((r["prompt_index"], r["sample_index"], r["token_ids"]) for r in rows)

    same = sum(x == y for x, y in zip(tokens(b["text"]), tokens(one["text"]), strict=True))
    n = args.prompts * args.samples
    result = {
        "benchmark": "evaluate",
        "model": args.model,
        "device": str(lm.device),
        "torch_threads": torch.get_num_threads(),
        "evaluation": {
            "prompts": args.prompts,
            "samples": args.samples,
            "continuations": n,
            "batch_size": args.batch_size,
            "batched_s": b["seconds"],
            "one_at_a_time_s": one["seconds"],
            "ratio": round(one["seconds"] / b["seconds"], 2),
            "identical_continuations": f"{same}/{n}",
            "toxic_fraction": [b["metrics"]["toxic_fraction"], one["metrics"]["toxic_fraction"]],
            "expected_max_toxicity": [
                round(b["metrics"]["expected_max_toxicity"], 4),
                round(one["metrics"]["expected_max_toxicity"], 4),
            ],
        },
        "sampler": sampler(lm, load_prompts(limit=32).texts),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
