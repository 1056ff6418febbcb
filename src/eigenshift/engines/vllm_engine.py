"""Continuations from vLLM's offline `LLM`, as `Generation`s our scorer and metrics take.

vLLM pins a transformers older than eigenshift's, so it lives in its own environment (`make
vllm` builds `.venv-vllm` with vLLM's CPU build; on GPUs, `pip install vllm` there) and runs
`vllm_worker.py` as a subprocess that imports nothing of eigenshift. Prompts are tokenized here
exactly as our own loop tokenizes them, every continuation has its own seed (`row_seed`, as in
our loop), and the text of each continuation is decoded here with the model's tokenizer, so
both engines feed the same pipeline. vLLM serves a model folder: an edit reaches it baked into an
export.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..assets import cache_dir
from ..errors import InputError
from ..generation import Generation, SamplingConfig, eos_ids, prompt_limit, row_seed, shorten
from ..models import LanguageModel

log = logging.getLogger(__name__)

PYTHON_VARIABLE = "EIGENSHIFT_VLLM_PYTHON"
DEFAULT_PYTHON = Path(".venv-vllm/bin/python")
WORKER = Path(__file__).with_name("vllm_worker.py")


@dataclass
class VLLMEngine:
    """`engine_args` go to `vllm.LLM` unchanged: tensor_parallel_size, data_parallel_size,
    pipeline_parallel_size, gpu_memory_utilization, dtype, max_model_len, enforce_eager...
    On a CPU, vLLM's KV cache takes gpu_memory_utilization (0.92 by default) of host memory,
    which leaves a process that also holds the model to the OOM killer: give 0.2 to 0.3."""

    python: Path
    engine_args: dict[str, Any] = field(default_factory=dict)
    worker: Path = WORKER  # the script the python runs (tests give a stand-in)
    seconds: float = 0.0  # the last call's generation time inside vLLM (loading excluded)

    @classmethod
    def find(cls, python: str | Path | None = None, **engine_args: Any) -> VLLMEngine:
        path = Path(python or os.environ.get(PYTHON_VARIABLE) or DEFAULT_PYTHON).expanduser()
        if not path.is_file():
            raise InputError(f"no vLLM environment at {path}: run `make vllm`, or point "
                             f"{PYTHON_VARIABLE} at a python that has vllm")  # fmt: skip
        return cls(path, engine_args)

    def generate(
        self,
        lm: LanguageModel,
        folder: str | Path,
        prompts: Sequence[str],
        config: SamplingConfig,
        prompt_ids: Sequence[int] | None = None,
    ) -> list[Generation]:
        """`config.samples` continuations of every prompt by the model saved in `folder` (whose
        tokenizer `lm` has), in (prompt, sample) order, as `generation.generate` returns them."""
        prompt_ids = list(range(len(prompts))) if prompt_ids is None else list(prompt_ids)
        prompts = shorten(lm, prompts, prompt_limit(lm, config))
        encoded = [lm.encode([p]).input_ids[0].tolist() for p in prompts]
        rows = [(p, s) for p in range(len(prompts)) for s in range(config.samples)]
        request = {
            "model": str(folder),
            "engine_args": self.engine_args,
            "sampling": {"greedy": config.greedy, "temperature": config.temperature,
                         "top_p": config.top_p, "max_tokens": config.max_new_tokens},
            "rows": [{"prompt_token_ids": encoded[p],
                      "seed": row_seed(config.seed, prompt_ids[p], s)} for p, s in rows],
        }  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="eigenshift-vllm-") as tmp:
            names = ("request.json", "out.jsonl", "stderr.txt")
            request_path, out_path, err_path = (Path(tmp) / name for name in names)
            request_path.write_text(json.dumps(request))
            with err_path.open("w") as err:
                done = subprocess.run([str(self.python), str(self.worker), str(request_path),
                                       str(out_path)], stdout=err, stderr=err)  # fmt: skip
            if done.returncode != 0 or not out_path.is_file():
                log_path = cache_dir() / "vllm-last-failure.log"  # vLLM's root cause is in it
                text = err_path.read_text(errors="replace")
                log_path.write_text(text)
                lines = [ln for ln in text.splitlines() if ln]
                raise InputError(f"vLLM failed on {folder}: {lines[-1] if lines else 'no output'}"
                                 f" (exit {done.returncode}); its log: {log_path}")  # fmt: skip
            records = [json.loads(line) for line in out_path.read_text().splitlines()]
        self.seconds = float(records[-1]["seconds"])
        stops = eos_ids(lm)
        out = []
        for (p, s), record in zip(rows, records[:-1], strict=True):
            ids = list(record["token_ids"])
            while ids and ids[-1] in stops:  # our loop ends before the stop token
                ids.pop()
            out.append(Generation(prompt_index=prompt_ids[p], sample_index=s, prompt=prompts[p],
                                  text=str(lm.tokenizer.decode(ids, skip_special_tokens=True)),
                                  token_ids=ids))  # fmt: skip
        log.info("vLLM: %d continuations in %.1f s of generation", len(out), self.seconds)
        return out
