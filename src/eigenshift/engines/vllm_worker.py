"""Generate with vLLM's offline `LLM`, in vLLM's own environment: this file imports only vLLM
and the standard library (vLLM pins a transformers older than eigenshift's), so it runs as

    .venv-vllm/bin/python vllm_worker.py REQUEST.json OUT.jsonl

REQUEST.json: {"model": folder, "engine_args": {...}, "sampling": {"greedy", "temperature",
"top_p", "max_tokens"}, "rows": [{"prompt_token_ids": [...], "seed": int}, ...]}. Every row is
one continuation with its own seed, so a row's text does not depend on its batch. OUT.jsonl gets
one {"token_ids", "text"} per row, in order, written to a temporary name and renamed at the end,
and a last line {"seconds": ...} for the generation alone.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> None:
    request_path, out_path = sys.argv[1], sys.argv[2]
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    from vllm import LLM, SamplingParams, TokensPrompt

    llm = LLM(model=request["model"], **request.get("engine_args", {}))
    sampling = request["sampling"]
    common = {"max_tokens": sampling["max_tokens"], "skip_special_tokens": True}
    if sampling["greedy"]:
        params = [SamplingParams(temperature=0.0, **common) for _ in request["rows"]]
    else:
        params = [SamplingParams(temperature=sampling["temperature"],
                                 top_p=sampling["top_p"], seed=row["seed"], **common)
                  for row in request["rows"]]  # fmt: skip
    prompts = [TokensPrompt(prompt_token_ids=row["prompt_token_ids"]) for row in request["rows"]]
    start = time.perf_counter()
    outputs = llm.generate(prompts, params)
    seconds = time.perf_counter() - start
    tmp = f"{out_path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        for out in outputs:
            best = out.outputs[0]
            f.write(json.dumps({"token_ids": list(best.token_ids), "text": best.text}) + "\n")
        f.write(json.dumps({"seconds": seconds}) + "\n")
    os.replace(tmp, out_path)


if __name__ == "__main__":
    main()
