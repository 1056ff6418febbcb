"""eigenshift: find, explain and remove toxic behaviour in causal language models.

The library calls match the commands: `load_model`, `generate`, `collect_activations`,
`load_scorer`, `load_prompts` / `load_labelled` / `load_clean_texts`, and the `Intervention` base.
"""

from .activations import collect_activations, iter_activations, pool
from .data import load_clean_texts, load_labelled, load_prompts
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
from .version import __version__

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
