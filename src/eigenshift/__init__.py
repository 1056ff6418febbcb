"""eigenshift: find, explain and remove toxic behaviour in causal language models.

The library calls match the commands: `load_model`, `generate`, `collect_activations`,
`load_scorer`, `load_prompts` / `load_labelled` / `load_clean_texts`, and the `Intervention` base.
"""

from typing import TYPE_CHECKING, Any

from .errors import (
    ArtifactError,
    DataError,
    EigenshiftError,
    InputError,
    ModelLoadError,
    NotBakeableError,
    ScorerError,
    UnsupportedArchitectureError,
)
from .version import __version__

# Everything else loads on first use (PEP 562): torch and transformers take seconds to import,
# and `eigenshift --version` or a config check should not wait for them.
_LAZY = {
    "collect_activations": "activations", "iter_activations": "activations", "pool": "activations",
    "load_clean_texts": "data", "load_labelled": "data", "load_prompts": "data",
    "Generation": "generation", "SamplingConfig": "generation", "generate": "generation",
    "Site": "hooks", "capture": "hooks", "transform": "hooks",
    "EigenShift": "interventions", "EigenShiftConfig": "interventions",
    "Intervention": "interventions", "applied_all": "interventions",
    "load_intervention": "interventions",
    "LanguageModel": "models", "SiteOverrides": "models", "load_model": "models",
    "Scorer": "scoring", "attribute_tokens": "scoring", "load_scorer": "scoring",
}  # fmt: skip

if TYPE_CHECKING:
    from .activations import collect_activations, iter_activations, pool
    from .data import load_clean_texts, load_labelled, load_prompts
    from .generation import Generation, SamplingConfig, generate
    from .hooks import Site, capture, transform
    from .interventions import (
        EigenShift,
        EigenShiftConfig,
        Intervention,
        applied_all,
        load_intervention,
    )
    from .models import LanguageModel, SiteOverrides, load_model
    from .scoring import Scorer, attribute_tokens, load_scorer


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'eigenshift' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ArtifactError",
    "DataError",
    "EigenShift",
    "EigenShiftConfig",
    "EigenshiftError",
    "Generation",
    "InputError",
    "Intervention",
    "LanguageModel",
    "ModelLoadError",
    "NotBakeableError",
    "SamplingConfig",
    "Scorer",
    "ScorerError",
    "Site",
    "SiteOverrides",
    "UnsupportedArchitectureError",
    "__version__",
    "applied_all",
    "attribute_tokens",
    "capture",
    "collect_activations",
    "generate",
    "iter_activations",
    "load_clean_texts",
    "load_intervention",
    "load_labelled",
    "load_model",
    "load_prompts",
    "load_scorer",
    "pool",
    "transform",
]
