"""The CUDA path end to end, on whatever GPU this runs on (prints one JSON object): bfloat16
load, EigenShift's fit (capture through hooks), hooked against baked logits, the export, and both
engines generating 200 prompts x 4 samples x 20 tokens, then a whole `evaluate` of the original
and the edit with each engine.

    .venv/bin/python benchmarks/bench_gpu.py [--model default] [--prompts 200] [--engines hf vllm]

vLLM needs its environment (`pip install vllm` into .venv-vllm, or EIGENSHIFT_VLLM_PYTHON).
`--device cpu` runs the same steps on a CPU, smaller, to check the script itself.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from common import timed

from eigenshift import SamplingConfig, load_model
from eigenshift.data import load_prompts
from eigenshift.engines import EngineConfig, open_engine
from eigenshift.evaluation import EvalConfig, evaluate
from eigenshift.evidence import EvidenceConfig, fit_eigenshift
from eigenshift.export.hf import export_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--engines", nargs="+", default=["hf", "vllm"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--memory", type=float, default=0.5, help="vLLM's share of GPU memory")
    parser.add_argument("--max-texts", type=int, default=None, help="labelled texts of the fit")
    parser.add_argument("--eager", action="store_true", help="vLLM without compilation")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a GPU machine (or --device cpu)")
    torch.set_grad_enabled(False)
    report: dict[str, object] = {"benchmark": "gpu", "torch": torch.__version__}
    if args.device == "cuda":
        report["device"] = torch.cuda.get_device_name(0)
        torch.cuda.reset_peak_memory_stats()
    dtype = "bfloat16" if args.device == "cuda" else "float32"
    lm, report["load_s"] = timed(lambda: load_model(args.model, dtype=dtype, device=args.device))
    report["dtype"] = str(lm.dtype)

    evidence = EvidenceConfig(max_texts=args.max_texts)
    fit, report["fit_s"] = timed(lambda: fit_eigenshift(lm, None, evidence,
                                                        progress=False))  # fmt: skip
    edit = fit.intervention()
    batch = lm.encode(load_prompts(limit=8).texts)
    with edit.applied(lm):
        hooked = lm.model(**batch.model_inputs()).logits.float()
    with edit.baked(lm):
        baked = lm.model(**batch.model_inputs()).logits.float()
    report["hooked_vs_baked_max_abs_logit_diff"] = float((hooked - baked).abs().max())
    with tempfile.TemporaryDirectory() as tmp:
        _, report["export_s"] = timed(lambda: export_model(lm, edit, Path(tmp) / "export"))

    prompts = load_prompts(limit=args.prompts).texts
    sampled = SamplingConfig(samples=args.samples, max_new_tokens=args.max_new_tokens,
                             batch_size=256)  # fmt: skip
    greedy = replace(sampled, greedy=True, samples=1)
    evaluation = EvalConfig(max_prompts=args.prompts, sampling=sampled)
    answers = {}
    for name in args.engines:
        vllm = name == "vllm"
        config = EngineConfig(engine=name, gpu_memory_utilization=args.memory if vllm else None,
                              enforce_eager=args.eager and vllm)  # fmt: skip
        row: dict[str, object] = {}
        with open_engine(config) as engine:
            answers[name], row["first_call_s"] = timed(lambda e=engine: e.generate(
                lm, edit, prompts, greedy))  # fmt: skip
            gens, seconds = timed(lambda e=engine: e.generate(lm, edit, prompts, sampled))
            row["edited_tokens_per_s"] = round(sum(len(g.token_ids) for g in gens) / seconds, 1)
            with tempfile.TemporaryDirectory() as tmp:
                run = replace(evaluation, engine=config)
                metrics, row["evaluate_wall_s"] = timed(lambda e=engine, t=tmp, c=run: evaluate(
                    lm, {"eigenshift": edit}, c, t, progress=False, engine=e))  # fmt: skip
            row["metrics"] = {r["method"]: {"expected_max_toxicity": round(
                r["expected_max_toxicity"], 4), "toxic_fraction": r["toxic_fraction"],
                "perplexity": round(r["perplexity"], 3)} for r in metrics["methods"]}  # fmt: skip
        report[name] = row
    if len(answers) == 2:
        hf, vl = answers.values()
        same = sum(a.token_ids == b.token_ids for a, b in zip(hf, vl, strict=True))
        report["greedy_edited_equal"] = f"{same} of {len(prompts)}"
    if args.device == "cuda":
        report["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    for key in ("load_s", "fit_s", "export_s"):
        report[key] = round(float(report[key]), 1)  # type: ignore[arg-type]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
