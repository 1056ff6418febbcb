"""Our generation loop (the hf engine) in float32 and in bfloat16, side by side on the same
prompts. This CPU has AVX-512 bf16 instructions: a bfloat16 matmul peaks about 2.4x float32.

Prints one JSON object with:
- tokens/s of sampled generation (64 prompts x 4 samples x 20 tokens, the same seeds) in each
  dtype, alternating runs, best of `--repeats`;
- the ratio of the two;
- a 2048 x 2048 matmul's GFLOPS in each dtype (the machine's compute limit);
- how many greedy continuations agree between the dtypes (bfloat16 rounds differently, so some
  continuations take another path after a near tie).

    .venv/bin/python benchmarks/bench_dtype.py [--prompts 64 --samples 4 --repeats 2]
"""

from __future__ import annotations

import argparse
import json

import torch
from common import matmul_gflops, timed

from eigenshift import SamplingConfig, generate, load_model
from eigenshift.data import load_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    prompts = load_prompts(limit=args.prompts).texts
    models = {name: load_model(args.model, dtype=name) for name in ("float32", "bfloat16")}
    sampled = SamplingConfig(samples=args.samples, max_new_tokens=args.max_new_tokens, seed=0)
    best: dict[str, float] = {}
    tokens: dict[str, int] = {}
    for _ in range(args.repeats):  # alternating, so both see the same machine state
        for name, lm in models.items():
            gens, seconds = timed(lambda lm=lm: generate(lm, prompts, sampled, progress=False))
            tokens[name] = sum(len(g.token_ids) for g in gens)
            best[name] = min(best.get(name, float("inf")), seconds)
    greedy = SamplingConfig(greedy=True, max_new_tokens=args.max_new_tokens)
    outs = {name: generate(lm, prompts, greedy, progress=False) for name, lm in models.items()}
    same = sum(a.token_ids == b.token_ids
               for a, b in zip(outs["float32"], outs["bfloat16"], strict=True))  # fmt: skip
    rate = {name: tokens[name] / best[name] for name in models}
    print(json.dumps({
        "benchmark": "dtype",
        "model": args.model,
        "rows": len(prompts) * args.samples,
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
        "tokens_per_s": {name: round(r, 1) for name, r in rate.items()},
        "bfloat16_vs_float32": round(rate["bfloat16"] / rate["float32"], 2),
        "matmul_gflops": {"float32": round(matmul_gflops(torch.float32), 1),
                          "bfloat16": round(matmul_gflops(torch.bfloat16), 1)},
        "greedy_continuations_equal": f"{same} of {len(prompts)}",
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
