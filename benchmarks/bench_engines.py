"""Our generation loop (hf) against vLLM's CPU build, side by side in one run on the same prompts,
rows and seeds, in float32 and bfloat16 (prints one JSON object).

For each dtype and engine: tokens/s of sampled generation (64 prompts x 4 samples x 20 tokens),
the vLLM/hf ratio, vLLM's start (loading, and compilation unless --eager), how many greedy
continuations the engines share, and the wall time of a whole `evaluate` of the original model
on those prompts (generation, scoring, fluency, perplexity, metrics) with each engine, with its
toxicity metrics set against the float32 hf run's intervals. Each figure is also given against
the machine's compute limit: a 2048 x 2048 matmul's FLOP/s in that dtype over 2 FLOPs per
parameter per generated token. vLLM runs in its own environment (`make vllm`).

    .venv/bin/python benchmarks/bench_engines.py [--prompts 64 --samples 4] [--eager]
        [--hf-batch 128] [--memory 0.25]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from common import matmul_gflops, timed

from eigenshift import SamplingConfig, load_model
from eigenshift.data import load_prompts
from eigenshift.engines import EngineConfig, HFEngine, open_engine
from eigenshift.evaluation import EvalConfig, evaluate


def tokens(gens) -> int:
    return sum(len(g.token_ids) for g in gens)


def inside(row: dict, reference: dict) -> bool:
    """This run's toxicity metrics inside the reference run's 95% intervals."""
    intervals = {key: reference["intervals"][key]["ci"]
                 for key in ("toxic_fraction", "expected_max_toxicity")}  # fmt: skip
    return all(lo <= row[key] <= hi for key, (lo, hi) in intervals.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--hf-batch", type=int, default=128, help="rows our loop runs at once")
    parser.add_argument("--eager", action="store_true", help="vLLM without compilation")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--memory", type=float, default=0.25, help="vLLM's share of host memory")
    parser.add_argument("--no-evaluate", action="store_true", help="generation figures only")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    prompts = load_prompts(limit=args.prompts).texts
    sampled = SamplingConfig(samples=args.samples, max_new_tokens=args.max_new_tokens, seed=0,
                             batch_size=args.hf_batch)  # fmt: skip
    greedy = replace(sampled, greedy=True, samples=1)
    vllm = EngineConfig(engine="vllm", enforce_eager=args.eager,
                        gpu_memory_utilization=args.memory)  # fmt: skip
    report: dict[str, object] = {"benchmark": "engines", "rows": len(prompts) * args.samples,
                                 "max_new_tokens": args.max_new_tokens, "hf_batch": args.hf_batch,
                                 "vllm_eager": args.eager,
                                 "threads": torch.get_num_threads()}  # fmt: skip
    reference = None
    for name in args.dtypes:
        dtype = getattr(torch, name)
        lm = load_model("default", dtype=name)
        params = sum(p.numel() for p in lm.model.parameters())
        limit = matmul_gflops(dtype) * 1e9 / (2 * params)
        hf = HFEngine()
        hf_gens, hf_s = timed(lambda lm=lm, e=hf: e.generate(lm, None, prompts, sampled))
        row: dict[str, object] = {"compute_limit_tokens_per_s": round(limit),
                                  "hf_tokens_per_s": round(tokens(hf_gens) / hf_s, 1)}  # fmt: skip
        with open_engine(vllm) as engine:
            (vl_greedy, start_s) = timed(lambda lm=lm, e=engine: e.generate(lm, None, prompts,
                                                                            greedy))  # fmt: skip
            before = engine.seconds  # type: ignore[attr-defined]
            vl_gens = engine.generate(lm, None, prompts, sampled)
            vl_s = engine.seconds - before  # type: ignore[attr-defined]
            hf_greedy = hf.generate(lm, None, prompts, greedy)
            same = sum(a.token_ids == b.token_ids for a, b in zip(hf_greedy, vl_greedy,
                                                                  strict=True))  # fmt: skip
            row |= {
                "vllm_tokens_per_s": round(tokens(vl_gens) / vl_s, 1),
                "vllm_vs_hf": round((tokens(vl_gens) / vl_s) / (tokens(hf_gens) / hf_s), 2),
                "vllm_start_and_first_call_s": round(start_s, 1),
                "greedy_continuations_equal": f"{same} of {len(prompts)}",
            }
            if not args.no_evaluate:
                config = EvalConfig(max_prompts=args.prompts, sampling=sampled)
                with tempfile.TemporaryDirectory() as tmp:
                    for label, cfg, given in (("hf", config, hf), ("vllm", replace(
                            config, engine=vllm), engine)):  # fmt: skip
                        metrics, wall = timed(lambda lm=lm, c=cfg, g=given, t=Path(tmp) / label:
                                              evaluate(lm, {}, c, t, progress=False, engine=g))
                        (orig,) = metrics["methods"]
                        reference = reference or orig  # the float32 hf run
                        row[f"evaluate_{label}_wall_s"] = round(wall, 1)
                        row[f"evaluate_{label}_metrics"] = {
                            "toxic_fraction": orig["toxic_fraction"],
                            "expected_max_toxicity": round(orig["expected_max_toxicity"], 4),
                            "perplexity": round(orig["perplexity"], 3),
                            "inside_float32_hf_intervals": inside(orig, reference),
                        }
        for key in ("hf_tokens_per_s", "vllm_tokens_per_s"):
            row[key.replace("tokens_per_s", "share_of_limit")] = round(float(row[key]) / limit, 2)
        report[name] = row
        print(json.dumps({name: row}), file=sys.stderr, flush=True)  # kept if a later one fails
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
