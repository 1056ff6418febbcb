"""What the command line sets about generation, free of torch: the sampling fields every
config nests, and which engine generates (with vLLM's own arguments)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from ..core.errors import InputError
from ..core.settings import check_settings, setting

# Which draw a seed makes: recorded in run folders, so a run never resumes into another sampler's.
SAMPLER = "exponential-race"
CANDIDATES = 1024  # tokens exact top-p looks among first
ChatTemplate = Literal["none", "user", "assistant"]


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = setting(20, "Tokens generated per continuation.", minimum=1)
    max_prompt_tokens: int = setting(512, "Longer prompts keep only their last this many "
                                          "tokens (within the model's context).",
                                     minimum=1)  # fmt: skip
    samples: int = setting(1, "Continuations per prompt.", minimum=1)
    top_p: float = setting(0.95, "Nucleus sampling: sample from the smallest set of likeliest "
                                 "tokens holding this share of the probability (1: all).",
                           maximum=1)  # fmt: skip
    temperature: float = setting(1.0, "Softmax temperature of sampling (below 1: sharper).")
    greedy: bool = setting(False, "Argmax decoding instead of sampling.", flag="--greedy/--sample")
    seed: int = setting(0, "Seed of the random stream each (prompt, sample) row draws from.",
                        minimum=0)  # fmt: skip
    batch_size: int = setting(128, "Rows generated at once (results do not depend on it).",
                              minimum=1, resume=False)  # fmt: skip
    chat_template: ChatTemplate = setting(
        "none", "Prompt through the tokenizer's chat template: none (raw text), user (the prompt "
        "is the user's turn), assistant (the prompt starts the assistant's reply to an empty "
        "user turn).")
    # Exact top-p looks among this many most likely tokens first (method.md section 7) and sorts
    # the whole vocabulary only for rows whose top candidates hold less than top_p of the mass.
    candidates: int = setting(CANDIDATES, minimum=1, cli=False, resume=False)  # exact either way

    def __post_init__(self) -> None:
        check_settings(self)
        if not 0.0 < self.top_p <= 1.0:
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0.0:
            raise InputError(
                f"temperature must be > 0 (use greedy for argmax), got {self.temperature}"
            )


# vLLM's own engine arguments that have an option here; anything else goes through --engine-arg.
VLLM_ARGS = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size",
             "gpu_memory_utilization", "max_model_len", "enforce_eager",
             "distributed_executor_backend")  # fmt: skip


@dataclass(frozen=True)
class EngineConfig:
    engine: Literal["hf", "vllm"] = setting(
        "hf", "hf: eigenshift's loop, the edit applied as hooks. vllm: vLLM's offline LLM on the "
              "edit baked into an export cached by the artifact's hash (`make vllm` installs it)."
    )  # fmt: skip
    vllm_python: str | None = setting(
        None, "The python of an environment with vLLM (default: $EIGENSHIFT_VLLM_PYTHON, else "
              ".venv-vllm).")  # fmt: skip
    tensor_parallel_size: int = setting(1, "vLLM: GPUs each copy of the model is split across.",
                                        minimum=1)  # fmt: skip
    pipeline_parallel_size: int = setting(1, "vLLM: pipeline stages (nodes, with Ray).", minimum=1)
    data_parallel_size: int = setting(1, "vLLM: copies of the model serving at once.", minimum=1)
    gpu_memory_utilization: float | None = setting(
        None, "vLLM: share of GPU memory for weights and KV cache (default vLLM's; on a CPU, "
              "0.25 of host memory, since this process holds the model too).",
        minimum=0.01, maximum=1.0)  # fmt: skip
    max_model_len: int | None = setting(None, "vLLM: context length (default: the longest prompt "
                                              "plus the tokens generated).", minimum=8)  # fmt: skip
    enforce_eager: bool = setting(False, "vLLM: no compilation or graphs (starts faster, "
                                         "generates slower).")  # fmt: skip
    distributed_executor_backend: Literal["mp", "ray"] | None = setting(
        None, "vLLM: mp (one node) or ray (several nodes).")  # fmt: skip
    vllm_dtype: str = setting("model", "vLLM's dtype: 'model' (the loaded model's), or auto, "
                                       "float32, bfloat16, float16.")  # fmt: skip
    engine_arg: tuple[str, ...] = setting((), "Another vLLM engine argument, KEY=VALUE (VALUE "
                                              "read as JSON when it parses); repeat.")  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)
        self.extra_args()  # refuse a malformed KEY=VALUE now

    def extra_args(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for item in self.engine_arg:
            key, sep, raw = item.partition("=")
            if not sep or not key.strip().isidentifier():
                raise InputError(f"--engine-arg '{item}' is not KEY=VALUE (e.g. "
                                 "kv_cache_dtype=fp8)")  # fmt: skip
            try:
                value: Any = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
            out[key.strip()] = value
        return out

    def vllm_args(self) -> dict[str, Any]:
        """The vLLM engine arguments the user set (those left at vLLM's default are left out)."""
        defaults = EngineConfig()
        args = {k: getattr(self, k) for k in VLLM_ARGS if getattr(self, k) != getattr(defaults, k)}
        return args | self.extra_args()

    @property
    def sampler(self) -> str:
        """What draws the samples, for the resume check: two engines' sampled continuations of
        one seed differ, so a run never mixes them."""
        return SAMPLER if self.engine == "hf" else "vllm"


