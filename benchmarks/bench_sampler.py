"""Exact top-p sampling per decoding step: the race run first (`sample_top_p`) against the sorted
prefix (`sorted_top_p`), side by side on the same next-token distributions of the default model
(`--rows` continuations of real prompts, sampled a few tokens in), with the same noise. Prints
one JSON object: milliseconds per step for each, the ratio, and whether they picked the same
tokens.

    .venv/bin/python benchmarks/bench_sampler.py [--rows 128 --top-p 0.95 --repeats 20]
"""

from __future__ import annotations

import argparse
import json

import torch
from common import timed

from eigenshift import load_model
from eigenshift.data import load_prompts
from eigenshift.engines.generation import sample_top_p, sorted_top_p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    lm = load_model("default")
    batch = lm.encode(load_prompts(limit=args.rows).texts)
    probs = torch.softmax(lm.model(**batch.model_inputs()).logits[:, -1].float(), -1)
    noise = torch.empty_like(probs).exponential_(generator=torch.Generator().manual_seed(0))
    race, race_s = timed(lambda: [sample_top_p(probs, noise, args.top_p)
                                  for _ in range(args.repeats)])  # fmt: skip
    sort, sort_s = timed(lambda: [sorted_top_p(probs, noise, args.top_p)
                                  for _ in range(args.repeats)])  # fmt: skip
    print(json.dumps({
        "benchmark": "sampler", "rows": args.rows, "vocabulary": probs.shape[1],
        "top_p": args.top_p, "threads": torch.get_num_threads(),
        "race_first_ms_per_step": round(1000 * race_s / args.repeats, 2),
        "sorted_prefix_ms_per_step": round(1000 * sort_s / args.repeats, 2),
        "speedup": round(sort_s / race_s, 2),
        "same_tokens": bool(torch.equal(race[0], sort[0])),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
