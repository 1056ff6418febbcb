"""Generation engines: our own loop (`hf`) and vLLM's offline `LLM` (`vllm`), one interface."""

from .base import Engine, EngineConfig, HFEngine, open_engine

__all__ = ["Engine", "EngineConfig", "HFEngine", "open_engine"]
