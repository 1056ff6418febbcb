"""eigenshift: find, explain and remove toxic behaviour in causal language models."""

__version__ = "0.1.0"
