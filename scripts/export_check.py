"""Does an export behave as the hook does? For one saved intervention on the default model:
greedy continuations of plain transformers `generate` on the export (no eigenshift code in the
loop; a centered EigenShift's logit bias applied by generate from generation_config.json) against
the hooked model's, and perplexity of the export reloaded with eigenshift against the hook's.

    .venv/bin/python scripts/export_check.py runs/tune-study/tune/chosen/eigenshift \
        [--prompts 64 --texts 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from eigenshift import SamplingConfig, generate, load_model
from eigenshift.data import load_labelled, load_prompts
from eigenshift.evaluation.perplexity import perplexities
from eigenshift.export.hf import export_model
from eigenshift.interventions import load_intervention


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("intervention", type=Path)
    parser.add_argument("--model", default="default")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=20)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    lm = load_model(args.model)
    edit = load_intervention(args.intervention, lm)
    prompts = load_prompts("default", limit=args.prompts).texts
    data = load_labelled("default")
    texts = [t for t, y in zip(data.texts, data.labels, strict=True) if not y][: args.texts]
    config = SamplingConfig(greedy=True, max_new_tokens=args.tokens)
    original = generate(lm, prompts, config, progress=False)
    with edit.applied(lm):
        hooked = generate(lm, prompts, config, progress=False)
        ppl_hook = perplexities(lm, texts)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export_model(lm, edit, Path(tmp) / "export")
        plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        same = 0
        for prompt, gen in zip(prompts, hooked, strict=True):
            ids = lm.tokenizer(prompt, return_tensors="pt")
            out = plain.generate(**ids, max_new_tokens=args.tokens, do_sample=False,
                                 pad_token_id=lm.tokenizer.pad_token_id)  # fmt: skip
            same += out[0, ids["input_ids"].shape[1] :].tolist() == gen.token_ids
        reloaded = load_model(str(folder))
        ppl_export = perplexities(reloaded, texts)
        logit_bias = (folder / "logit_bias.json").is_file()
    changed = sum(a.token_ids != b.token_ids for a, b in zip(original, hooked, strict=True))
    print(json.dumps({
        "intervention": str(args.intervention),
        "method": edit.meta.method,
        "params": {k: edit.params[k] for k in ("k", "alpha", "dampen") if k in edit.params},
        "export_has_logit_bias": logit_bias,
        "prompts": len(prompts),
        "greedy_changed_by_edit": changed,
        "greedy_export_equals_hook": same,
        "texts": len(texts),
        "perplexity_hook": float(np.mean(ppl_hook)),
        "perplexity_export": float(np.mean(ppl_export)),
        "perplexity_max_rel_diff": float(np.max(np.abs(ppl_export - ppl_hook) / ppl_hook)),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
