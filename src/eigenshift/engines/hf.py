"""Our own loop as an engine (the edit applied as hooks), and `open_engine`, which opens the
engine a config names (vLLM's in its worker) and closes it on any exit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..interventions import Intervention, applied_or_not
from ..models import LanguageModel
from .base import Advance, Engine
from .config import EngineConfig, SamplingConfig
from .generation import Generation, generate


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
