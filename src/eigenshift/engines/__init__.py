"""Generation engines: our own loop (`hf`) and vLLM's offline `LLM` (`vllm`), one interface;
llama.cpp runs GGUF exports for comparison. Names load on first use (`core.lazy`)."""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:
    from .base import Engine
    from .config import EngineConfig, SamplingConfig
    from .generation import Generation, generate
    from .hf import HFEngine, open_engine

__getattr__, __dir__ = lazy_names(__name__, {
    "Engine": "base", "HFEngine": "hf", "open_engine": "hf",
    "EngineConfig": "config", "SamplingConfig": "config",
    "Generation": "generation", "generate": "generation",
})  # fmt: skip
__all__ = ["Engine", "EngineConfig", "Generation", "HFEngine", "SamplingConfig", "generate",
           "open_engine"]  # fmt: skip
