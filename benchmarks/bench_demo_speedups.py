"""Each speed-up behind the 10-minute demo against the path it replaced, side by side in one run
on the default model with the demo's data sizes.

Prints one JSON object with, per speed-up, the old and new seconds, their ratio and a check that
the results agree:
- `linear_act_fit`: Linear-AcT's causal fit on 400 labelled texts, one forward pass per site
  (`causal_by_passes`, the old path) against the block-by-block walk (`causal_by_replay`);
- `perplexity`: clean-text perplexity of the original, one EigenShift point, steering and
  Linear-AcT on 300 BoolQ passages, a whole pass per method (old) against `shared_perplexities`
  (one pass, each method rerunning only the stages from its first edit);
- `dtype`: one perplexity pass and 64 x 4 sampled continuations of 20 tokens, float32 against
  bfloat16 (the demo's `--dtype fast` on this CPU), with the perplexity gap between them;
- `cross_entropy`: the NLL of one batch of 8 x 128 tokens over the 49,152-token vocabulary, on a
  transposed (batch, vocabulary, tokens) view (old) against contiguous rows;
- `continuation_nll`: the continuations' NLL of 96 prompts x 4 samples, whole prompt +
  continuation sequences (`sequence_nll`, old) against `continuation_nll` (each prompt once,
  its KV cache copied to its samples, logits only where scored).

    .venv/bin/python benchmarks/bench_demo_speedups.py [--texts 300 --act-texts 400]
        [--parts linear_act_fit,perplexity,dtype,cross_entropy,continuation_nll]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F
from common import timed

from eigenshift import SamplingConfig, generate, load_model
from eigenshift.data import load_clean_texts, load_labelled, load_prompts
from eigenshift.engines.generation import prompt_token_ids
from eigenshift.evaluation.perplexity import (
    continuation_nll,
    perplexities,
    sequence_nll,
    shared_perplexities,
)
from eigenshift.evidence import EvidenceConfig, fit_eigenshift
from eigenshift.evidence.gathering import EvidenceRule
from eigenshift.interventions import EigenShiftConfig, LinearAcT, MeanDifferenceSteering
from eigenshift.interventions.transport import causal_by_passes, causal_by_replay
from eigenshift.models import LanguageModel


def _ratio(old: float, new: float) -> dict[str, float]:
    return {"old_seconds": round(old, 2), "new_seconds": round(new, 2),
            "ratio": round(old / new, 2)}  # fmt: skip


PARTS = ("linear_act_fit", "perplexity", "dtype", "cross_entropy", "continuation_nll")


def cross_entropy(lm: LanguageModel) -> dict[str, float]:
    batch = lm.encode(load_clean_texts("default", limit=8).texts, max_length=128)
    logits = lm.model(**batch.model_inputs()).logits
    ids = batch.input_ids
    vocab = logits.shape[-1]

    def old() -> torch.Tensor:
        return F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:],
                               reduction="none")  # fmt: skip

    def new() -> torch.Tensor:
        flat = logits[:, :-1].float().reshape(-1, vocab)
        return F.cross_entropy(flat, ids[:, 1:].reshape(-1), reduction="none").view(8, -1)

    old(), new()  # warm-up
    a, t_old = timed(lambda: [old() for _ in range(5)])
    b, t_new = timed(lambda: [new() for _ in range(5)])
    return {**_ratio(t_old / 5, t_new / 5), "max_gap": float((a[0] - b[0]).abs().max())}


def nll(lm: LanguageModel) -> dict[str, float]:
    prompts = load_prompts(limit=96).texts
    config = SamplingConfig(samples=4, max_new_tokens=20, seed=0)
    gens = generate(lm, prompts, config, progress=False)
    ids = prompt_token_ids(lm, [g.prompt for g in gens], config)
    sequences = [p + g.token_ids for p, g in zip(ids, gens, strict=True)]
    whole, t_old = timed(lambda: sequence_nll(lm, sequences, [len(p) for p in ids]))
    shared, t_new = timed(lambda: continuation_nll(lm, ids, [g.token_ids for g in gens]))
    gap = float(np.nanmax(np.abs(whole - shared)))
    return {**_ratio(t_old, t_new), "rows": len(gens), "max_nll_gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--act-texts", type=int, default=400)
    parser.add_argument("--dtype", default="bfloat16", help="of all parts but `dtype`")
    parser.add_argument("--parts", default=",".join(PARTS))
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    parts = args.parts.split(",")
    out: dict[str, object] = {"threads": torch.get_num_threads(), "model_dtype": args.dtype}
    lm = load_model("default", dtype=args.dtype)
    if "cross_entropy" in parts:
        out["cross_entropy"] = cross_entropy(lm)
    if "continuation_nll" in parts:
        out["continuation_nll"] = nll(lm)
    if not {"linear_act_fit", "perplexity", "dtype"} & set(parts):
        print(json.dumps(out, indent=2))
        return

    if "linear_act_fit" not in parts:
        raise SystemExit("--parts: the perplexity and dtype parts reuse the Linear-AcT fit")
    act_data = load_labelled("default", max_examples=args.act_texts)
    config = LinearAcT.config_class()
    act = LinearAcT.fit(lm, data=act_data, progress=False)
    sites, widths = act.params["sites"], act.params["widths"]
    old, t_old = timed(lambda: causal_by_passes(lm, act_data, sites, widths, config, False))
    new, t_new = timed(lambda: causal_by_replay(lm, act_data, sites, widths, config, False))
    assert new is not None
    gap = max(float((old[k] - new[k]).abs().max()) for k in ("w", "b"))
    out["linear_act_fit"] = {**_ratio(t_old, t_new), "max_map_gap": gap, "sites": len(sites)}

    data = load_labelled("default", max_examples=1000)
    fit = fit_eigenshift(lm, EigenShiftConfig(resamples=20, min_toxic=5), EvidenceConfig(
        max_texts=300, rule=EvidenceRule(clean_budget=2000)), progress=False)  # fmt: skip
    methods = [("original", None), ("eigenshift", fit.intervention(2, 0.5)),
               ("steer", MeanDifferenceSteering.fit(lm, data=data, progress=False)),
               ("linear-act", act)]  # fmt: skip
    texts = load_clean_texts("default", limit=args.texts).texts

    def whole() -> dict[str, np.ndarray]:
        values = {}
        for name, iv in methods:
            if iv is None:
                values[name] = perplexities(lm, texts)
            else:
                with iv.applied(lm):
                    values[name] = perplexities(lm, texts)
        return values

    def shared() -> dict[str, np.ndarray]:
        return {name: v for name, v, _ in shared_perplexities(lm, texts, methods)}

    old_ppl, t_old = timed(whole)
    new_ppl, t_new = timed(shared)
    rel = max(float(np.nanmax(np.abs(new_ppl[n] / old_ppl[n] - 1))) for n, _ in methods)
    out["perplexity"] = {**_ratio(t_old, t_new), "methods": [n for n, _ in methods],
                         "max_relative_gap": rel}  # fmt: skip

    prompts = load_prompts(limit=64).texts
    sampled = SamplingConfig(samples=4, max_new_tokens=20, seed=0)
    times, ppl = {}, {}
    for dtype in ("float32", "bfloat16"):
        model = load_model("default", dtype=dtype)
        ppl[dtype], times[f"ppl_{dtype}"] = timed(lambda m=model: perplexities(m, texts))
        gens, times[f"gen_{dtype}"] = timed(
            lambda m=model: generate(m, prompts, sampled, progress=False))
        times[f"tokens_{dtype}"] = sum(len(g.token_ids) for g in gens)
    out["dtype"] = {
        "perplexity_pass": _ratio(times["ppl_float32"], times["ppl_bfloat16"]),
        "generation": _ratio(times["gen_float32"], times["gen_bfloat16"]),
        "generation_tokens_per_s": {d: round(times[f"tokens_{d}"] / times[f"gen_{d}"], 1)
                                    for d in ("float32", "bfloat16")},
        "mean_perplexity": {d: float(np.nanmean(v)) for d, v in ppl.items()},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
