"""How often the batch size changes a sampled continuation on the default model (float32).

Each row's random stream never depends on the batch; the model's float32 arithmetic does (padding
and batch shape reorder sums), so a draw can move where rounding decides it. This counts the
continuations (and tokens) that differ between batch size 1 and larger batches, with the race
sampler the library uses, and with an inverse-CDF sampler on the same logits for comparison.

    python benchmarks/bench_batch_invariance.py [--prompts 32 --samples 4 --tokens 20]
"""

from __future__ import annotations

import argparse
import json
from unittest import mock

import torch

from eigenshift import generation as gen
from eigenshift import load_model
from eigenshift.evaluation.config import EvalConfig
from eigenshift.evaluation.plan import select_prompts


def inverse_cdf(probs, noise, top_p, candidates=1024):
    """The previous sampler: one uniform per row (derived from the row's noise), inverse CDF."""
    vals, idx = probs.sort(dim=-1, descending=True)
    keep = (vals.cumsum(-1) - vals) < top_p
    c = (vals * keep).cumsum(-1)
    u = 1.0 - torch.exp(-noise[:, 0])  # a uniform draw from the row's stream
    choice = (c < (u * c[:, -1]).unsqueeze(-1)).sum(-1).clamp(max=vals.shape[-1] - 1)
    choice = torch.minimum(choice, keep.sum(-1) - 1)
    return idx.gather(1, choice.unsqueeze(-1)).squeeze(-1)


def differences(lm, texts, ids, args, batch_sizes):
    runs = {}
    for bs in batch_sizes:
        cfg = gen.SamplingConfig(samples=args.samples, max_new_tokens=args.tokens, seed=7,
                                 batch_size=bs)  # fmt: skip
        runs[bs] = [g.token_ids for g in gen.generate(lm, texts, cfg, prompt_ids=ids,
                                                      progress=False)]  # fmt: skip
    out = {}
    for bs in batch_sizes[1:]:
        pairs = list(zip(runs[batch_sizes[0]], runs[bs], strict=True))
        out[f"batch_{bs}_vs_{batch_sizes[0]}"] = {
            "continuations_differing": sum(a != b for a, b in pairs),
            "continuations": len(pairs),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args()
    lm = load_model("default")
    ids, texts, _ = select_prompts(EvalConfig(max_prompts=args.prompts))
    batch_sizes = [1, 8, 32]
    result = {"model": lm.name, "dtype": str(lm.dtype), "prompts": args.prompts,
              "samples": args.samples, "max_new_tokens": args.tokens,
              "race": differences(lm, texts, ids, args, batch_sizes)}  # fmt: skip
    with mock.patch.object(gen, "sample_top_p", inverse_cdf):
        result["inverse_cdf"] = differences(lm, texts, ids, args, batch_sizes)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
