"""Our generation loop (hf) against vLLM's CPU build, side by side on the same prompts, rows and
seeds, in float32 and bfloat16 (prints one JSON object).

For each dtype: tokens/s of sampled generation (64 prompts x 4 samples x 20 tokens) on each
engine, the vLLM/hf ratio, vLLM's wall time including its start (loading and compilation), and
how many greedy continuations the two engines share. vLLM runs in its own environment
(`make vllm`, or --python).

    .venv/bin/python benchmarks/bench_engines.py [--prompts 64 --samples 4] [--eager]
        [--memory 0.25]
"""

from __future__ import annotations

import argparse
import json

import torch
from common import timed

from eigenshift import SamplingConfig, generate, load_model
from eigenshift.data import load_prompts
from eigenshift.engines.vllm_engine import VLLMEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--python", default=None, help="vLLM's python (default .venv-vllm)")
    parser.add_argument("--eager", action="store_true", help="vLLM without compilation")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    # vLLM's CPU worker takes this share of the host's memory for its KV cache (0.92 by
    # default, which leaves this process, holding the hf model, to the OOM killer)
    parser.add_argument("--memory", type=float, default=0.25)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    prompts = load_prompts(limit=args.prompts).texts
    sampled = SamplingConfig(samples=args.samples, max_new_tokens=args.max_new_tokens, seed=0)
    greedy = SamplingConfig(greedy=True, max_new_tokens=args.max_new_tokens)
    report: dict[str, object] = {"benchmark": "engines", "rows": len(prompts) * args.samples,
                                 "max_new_tokens": args.max_new_tokens,
                                 "threads": torch.get_num_threads()}  # fmt: skip
    for dtype in args.dtypes:
        lm = load_model("default", dtype=dtype)
        folder = lm.location  # the default model's converted folder, as vLLM reads it
        engine = VLLMEngine.find(args.python, dtype=dtype, max_model_len=1024, seed=0,
                                 enforce_eager=args.eager,
                                 gpu_memory_utilization=args.memory)  # fmt: skip
        hf, hf_s = timed(lambda lm=lm: generate(lm, prompts, sampled, progress=False))
        vl, vl_wall = timed(lambda lm=lm, e=engine, f=folder: e.generate(lm, f, prompts, sampled))
        vl_s = engine.seconds
        hf_tok, vl_tok = (sum(len(g.token_ids) for g in gens) for gens in (hf, vl))
        hf_greedy = generate(lm, prompts, greedy, progress=False)
        vl_greedy = engine.generate(lm, folder, prompts, greedy)
        same = sum(a.token_ids == b.token_ids for a, b in zip(hf_greedy, vl_greedy, strict=True))
        report[dtype] = {
            "hf_tokens_per_s": round(hf_tok / hf_s, 1),
            "vllm_tokens_per_s": round(vl_tok / vl_s, 1),
            "vllm_vs_hf": round((vl_tok / vl_s) / (hf_tok / hf_s), 2),
            "vllm_wall_s_with_start": round(vl_wall, 1),
            "hf_s": round(hf_s, 1),
            "greedy_continuations_equal": f"{same} of {len(prompts)}",
        }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
