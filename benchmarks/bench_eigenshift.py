"""EigenShift speed, each comparison side by side in one run (prints one JSON object):

1. decomposition: V, S from the float64 Gram matrix vs numpy's full SVD, at LLaMA-2's
   unembedding shape (32000 x 4096, random float32), with the subspace agreement;
2. fit: our pipeline (batched generation capturing states in the same pass, Gram route) vs a
   reference-style one (one prompt at a time, a second forward pass to collect the states, a
   full SVD), on the same prompts, with the toxic/clean counts of each;
3. hook overhead: sampling with the EigenShift hook vs without, alternating, best of N.

    .venv/bin/python benchmarks/bench_eigenshift.py [--rows 32000 --cols 4096] [--fit-prompts 100]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from common import timed

from eigenshift import SamplingConfig, generate, load_model, load_scorer
from eigenshift.data import load_prompts
from eigenshift.evidence import EvidenceConfig, fit_eigenshift
from eigenshift.interventions import EigenShiftConfig
from eigenshift.interventions.eigenshift.decomposition import right_singular
from eigenshift.scoring import attribute_tokens


def decomposition(rows: int, cols: int) -> dict:
    torch.manual_seed(0)
    w = torch.randn(rows, cols) / cols**0.5
    (s, v), t_gram = timed(lambda: right_singular(w))
    (_, s_np, vt_np), t_svd = timed(lambda: np.linalg.svd(w.numpy(), full_matrices=False))
    top = 64  # agreement of the leading subspace (random matrices: close singular values)
    v_np = torch.from_numpy(vt_np.T[:, :top]).double()
    residual = (v_np - v[:, :top] @ (v[:, :top].T @ v_np)).norm() / v_np.norm()
    return {
        "shape": [rows, cols],
        "gram_eigh_s": round(t_gram, 2),
        "numpy_svd_s": round(t_svd, 2),
        "ratio": round(t_svd / t_gram, 2),
        "max_singular_value_rel_diff": float(np.max(np.abs(s.numpy() - s_np) / s_np)),
        "top64_subspace_residual": float(residual),
    }


def reference_fit(lm, texts: list[str], config: EigenShiftConfig, scorer) -> dict:
    """One prompt at a time, states from a second forward pass, full SVD: the reference shape."""
    toxic, clean = [], []
    one = SamplingConfig(max_new_tokens=config.sampling.max_new_tokens, greedy=True, batch_size=1)
    for i, text in enumerate(texts):
        gen = generate(lm, [text], one, prompt_ids=[i], progress=False)[0]
        if not gen.token_ids:
            continue
        score = float(scorer.score([gen.text])[0])
        ids = torch.tensor([lm.tokenizer(text)["input_ids"] + gen.token_ids])
        states = []
        handle = lm.unembedding.register_forward_pre_hook(lambda _m, a, s=states: s.append(a[0]))
        with torch.inference_mode():
            lm.model(ids)
        handle.remove()
        n_prompt = ids.shape[1] - len(gen.token_ids)
        hidden = states[0][0, n_prompt - 1 : -1]
        if score >= config.threshold:
            j = attribute_tokens(scorer, lm.tokenizer, [gen.token_ids])[0].top
            toxic.append(hidden[j])
        else:
            clean.append(hidden[0])
    w = lm.unembedding.weight.detach().double()
    torch.linalg.svd(w, full_matrices=False)
    return {"toxic_states": len(toxic), "clean_states": len(clean)}


def hook_overhead(lm, intervention, prompts: list[str], repeats: int) -> dict:
    cfg = SamplingConfig(max_new_tokens=20, samples=2, seed=0, batch_size=32)
    plain, hooked = [], []
    for _ in range(repeats):
        plain.append(timed(lambda: generate(lm, prompts, cfg, progress=False))[1])
        with intervention.applied(lm):
            hooked.append(timed(lambda: generate(lm, prompts, cfg, progress=False))[1])
    return {
        "k": intervention.k,
        "rows": len(prompts) * 2,
        "plain_best_s": round(min(plain), 3),
        "hooked_best_s": round(min(hooked), 3),
        "overhead": round(min(hooked) / min(plain) - 1, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32000)
    parser.add_argument("--cols", type=int, default=4096)
    parser.add_argument("--fit-prompts", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-decomposition", action="store_true")
    args = parser.parse_args()

    result: dict = {"benchmark": "eigenshift", "torch_threads": torch.get_num_threads()}
    if not args.skip_decomposition:
        result["decomposition"] = decomposition(args.rows, args.cols)

    lm = load_model("default")
    scorer = load_scorer("default")
    config = EvidenceConfig(evidence="generated", fit_prompts=args.fit_prompts)
    fit, t_ours = timed(lambda: fit_eigenshift(lm, EigenShiftConfig(min_toxic=1), config,
                                               scorer=scorer, progress=False))  # fmt: skip
    _, texts = load_prompts(config.prompts).select(config.fit_prompts, config.prompt_seed)
    ref, t_ref = timed(lambda: reference_fit(lm, texts, config, scorer))
    result["fit"] = {
        "prompts": args.fit_prompts,
        "ours_s": round(t_ours, 2),
        "reference_s": round(t_ref, 2),
        "ratio": round(t_ref / t_ours, 2),
        "ours_counts": {k: fit.meta.stats[k] for k in ("toxic_states", "clean_states_first")},
        "reference_counts": ref,
    }
    intervention = fit.intervention(k=29, alpha=0.5)
    prompts = load_prompts(config.prompts).select(32, config.prompt_seed)[1]
    result["hook"] = hook_overhead(lm, intervention, prompts, args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
