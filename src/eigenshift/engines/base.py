"""One generation interface, two engines: `hf` (our own loop, the edit applied as hooks) and
`vllm` (vLLM's offline `LLM` on the edit baked into a cached export). Evaluate, the fits and tune
ask an `Engine` for continuations and hand them to the same store, scorer and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..errors import InputError
from ..generation import SAMPLER, Generation, SamplingConfig, generate
from ..models import LanguageModel
from ..settings import check_settings, setting

if TYPE_CHECKING:
    from ..interventions import Intervention

log = logging.getLogger(__name__)

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


Advance = Callable[[int], None]


class Engine(Protocol):
    name: str

    def generate(
        self,
        lm: LanguageModel,
        intervention: Intervention | None,
        prompts: Sequence[str],
        config: SamplingConfig,
        *,
        prompt_ids: Sequence[int] | None = None,
        progress: bool = False,
        advance: Advance | None = None,
    ) -> list[Generation]:
        """`config.samples` continuations of every prompt by `lm` with `intervention`, in
        (prompt, sample) order, each row seeded by its prompt id and sample index."""
        ...

    def prepare(self, lm: LanguageModel, interventions: Sequence[Intervention]) -> None:
        """Refuse, before any work, what this engine cannot run."""
        ...


class HFEngine:
    """Our own loop with the edit applied as hooks: every method, every model eigenshift loads."""

    name = "hf"

    def generate(
        self,
        lm: LanguageModel,
        intervention: Intervention | None,
        prompts: Sequence[str],
        config: SamplingConfig,
        *,
        prompt_ids: Sequence[int] | None = None,
        progress: bool = False,
        advance: Advance | None = None,
    ) -> list[Generation]:
        from ..interventions import applied_or_not  # interventions import engines

        with applied_or_not(intervention, lm):
            return generate(lm, prompts, config, prompt_ids=prompt_ids, progress=progress,
                            advance=advance)  # fmt: skip

    def prepare(self, lm: LanguageModel, interventions: Sequence[Intervention]) -> None:
        return None


@contextmanager
def open_engine(
    config: EngineConfig | None = None, given: Engine | None = None
) -> Iterator[Engine]:
    """The engine `config` names, closed (its worker stopped) on any exit; or `given`, an engine
    a caller opened to share across several steps (left open)."""
    config = config or EngineConfig()
    if given is not None:
        yield given
        return
    if config.engine == "hf":
        yield HFEngine()
        return
    from .vllm_engine import VLLMEngine

    engine = VLLMEngine.find(config)
    try:
        yield engine
    finally:
        engine.close()
