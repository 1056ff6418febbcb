"""Generate with vLLM's offline `LLM`, in vLLM's own environment: this file imports only vLLM,
tqdm and the standard library (vLLM pins a transformers older than eigenshift's), so it runs as

    .venv-vllm/bin/python vllm_worker.py

and talks JSON lines. Its stdout carries only the protocol (anything vLLM prints goes to stderr):

- in, first: {"model": folder, "engine_args": {...}}; out: {"ready": seconds to load}
- in, then any number of: {"rows": [{"prompt_token_ids", "seed"}, ...], "sampling": {"greedy",
  "temperature", "top_p", "max_tokens", "stop_token_ids"}, "logit_bias": {token: bias} | null,
  "probe": {"prompt_token_ids": [[...], ...], "logprobs": k} | null}
  out: {"progress": rows done} lines as rows finish, then {"outputs": [{"token_ids"}, ...],
  "seconds": generation time, "probe": [{token: logprob}, ...] | null}
- stdin closed: the worker exits.

Every row has its own seed, so a row's continuation does not depend on its batch. The probe asks
for the next token's raw log-probabilities (before any logit bias), so the caller can check that
the served weights are the ones it saved.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from tqdm import tqdm


def _protocol() -> Any:
    """A private copy of stdout for the protocol; fd 1 then points at stderr for everyone else."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def main() -> None:
    proto = _protocol()

    def send(record: dict[str, Any]) -> None:
        proto.write(json.dumps(record) + "\n")

    class Progress(tqdm):
        """vLLM's own bar (to stderr), which also reports each finished row."""

        def update(self, n: float | None = 1) -> bool | None:
            done = super().update(n)
            send({"progress": self.n})
            return done

    start = time.perf_counter()
    setup = json.loads(sys.stdin.readline())
    from vllm import LLM, SamplingParams, TokensPrompt

    llm = LLM(model=setup["model"], **setup.get("engine_args", {}))
    send({"ready": time.perf_counter() - start})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        probe = request.get("probe")
        probed = None
        if probe:
            params = SamplingParams(temperature=0.0, max_tokens=1, logprobs=probe["logprobs"])
            outs = llm.generate([TokensPrompt(prompt_token_ids=ids)
                                 for ids in probe["prompt_token_ids"]], params,
                                use_tqdm=False)  # fmt: skip
            probed = [{str(t): lp.logprob for t, lp in out.outputs[0].logprobs[0].items()}
                      for out in outs]  # fmt: skip
        sampling = request["sampling"]
        common: dict[str, Any] = {"max_tokens": sampling.get("max_tokens"),
                                  "logit_bias": {int(t): float(b) for t, b in
                                                 (request.get("logit_bias") or {}).items()} or None,
                                  "stop_token_ids": sampling.get("stop_token_ids"),
                                  "detokenize": False}  # the caller decodes  # fmt: skip
        if not request["rows"]:
            params_list = []
        elif sampling["greedy"]:
            params_list = [SamplingParams(temperature=0.0, **common) for _ in request["rows"]]
        else:
            params_list = [SamplingParams(temperature=sampling["temperature"],
                                          top_p=sampling["top_p"], seed=row["seed"], **common)
                           for row in request["rows"]]  # fmt: skip
        prompts = [TokensPrompt(prompt_token_ids=row["prompt_token_ids"])
                   for row in request["rows"]]  # fmt: skip
        start = time.perf_counter()
        outputs = llm.generate(prompts, params_list, use_tqdm=Progress) if prompts else []
        send({"outputs": [{"token_ids": list(out.outputs[0].token_ids)} for out in outputs],
              "seconds": time.perf_counter() - start, "probe": probed})  # fmt: skip


if __name__ == "__main__":
    main()
