"""Batched vs one-by-one activation capture and generation on the default model, side by side.

Prints one JSON object: seconds for each way, the speed-up ratio, and how far the batched results
are from the one-by-one ones (they must agree: padding correctness).

    .venv/bin/python benchmarks/bench_batching.py [--texts 64] [--prompts 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform

import torch
from common import timed

from eigenshift import SamplingConfig, collect_activations, generate, load_model
from eigenshift.data import load_labelled, load_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    lm = load_model(args.model, device=args.device)
    texts = load_labelled(max_examples=args.texts, seed=0).texts
    sites = [s + ":input" for s in lm.arch.mlp_site_names()]
    capture = dict(pooling="max", max_length=128, progress=False)
    batched, t_cap_b = timed(
        lambda: collect_activations(lm, texts, sites, batch_size=args.batch_size, **capture)
    )
    single, t_cap_1 = timed(lambda: collect_activations(lm, texts, sites, batch_size=1, **capture))
    cap_diff = max(float((batched[s] - single[s]).abs().max()) for s in sites)

    prompts = load_prompts(limit=args.prompts).texts
    cfg = dict(max_new_tokens=args.max_new_tokens, samples=1, seed=0)
    gen_b, t_gen_b = timed(
        lambda: generate(
            lm, prompts, SamplingConfig(**cfg, batch_size=args.batch_size), progress=False
        )
    )

    def one_by_one():
        out = []
        for i, p in enumerate(prompts):
            out += generate(
                lm, [p], SamplingConfig(**cfg, batch_size=1), prompt_ids=[i], progress=False
            )
        return out

    gen_1, t_gen_1 = timed(one_by_one)
    same = sum(a.token_ids == b.token_ids for a, b in zip(gen_b, gen_1, strict=True))
    tokens = sum(len(g.token_ids) for g in gen_b)

    result = {
        "benchmark": "batching",
        "model": args.model,
        "device": str(lm.device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name() if lm.device.type == "cuda" else None,
        "capture": {
            "texts": len(texts),
            "sites": len(sites),
            "batch_size": args.batch_size,
            "batched_s": round(t_cap_b, 3),
            "one_by_one_s": round(t_cap_1, 3),
            "ratio": round(t_cap_1 / t_cap_b, 2),
            "max_abs_diff": cap_diff,
        },
        "generation": {
            "prompts": len(prompts),
            "max_new_tokens": args.max_new_tokens,
            "batch_size": args.batch_size,
            "tokens": tokens,
            "batched_s": round(t_gen_b, 3),
            "one_by_one_s": round(t_gen_1, 3),
            "ratio": round(t_gen_1 / t_gen_b, 2),
            "batched_tokens_per_s": round(tokens / t_gen_b, 1),
            "identical_continuations": f"{same}/{len(prompts)}",
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
