"""eigenshift: find, explain and remove toxic behaviour in causal language models.

The library calls match the commands: `load_model`, `generate`, `collect_activations`,
`load_scorer`, `load_prompts` / `load_labelled` / `load_clean_texts`, and the `Intervention` base.
"""

from typing import TYPE_CHECKING

from .core.errors import (
    ArtifactError,
    DataError,
    EigenshiftError,
    InputError,
    ModelLoadError,
    NotBakeableError,
    ScorerError,
    UnsupportedArchitectureError,
)
from .core.lazy import lazy_names
from .core.version import __version__

# Everything else loads on first use (PEP 562): torch and transformers take seconds to import,
# and `eigenshift --version` or a config check should not wait for them.
_LAZY = {
    "collect_activations": "capture.activations", "iter_activations": "capture.activations",
    "pool": "capture.activations",
    "load_clean_texts": "data", "load_labelled": "data", "load_prompts": "data",
    "Generation": "engines.generation", "SamplingConfig": "engines.config",
    "generate": "engines.generation",
    "Site": "capture.hooks", "capture": "capture.hooks", "transform": "capture.hooks",
    "EvidenceConfig": "evidence", "gather": "evidence", "fit_eigenshift": "evidence",
    "EigenShift": "interventions", "EigenShiftConfig": "interventions",
    "Intervention": "interventions", "applied_all": "interventions",
    "load_intervention": "interventions",
    "LanguageModel": "models", "SiteOverrides": "models", "load_model": "models",
    "Scorer": "scoring", "attribute_tokens": "scoring", "load_scorer": "scoring",
}

if TYPE_CHECKING:
    from .capture.activations import collect_activations, iter_activations, pool
    from .capture.hooks import Site, capture, transform
    from .data import load_clean_texts, load_labelled, load_prompts
    from .engines.config import SamplingConfig
    from .engines.generation import Generation, generate
    from .evidence import EvidenceConfig, fit_eigenshift, gather
    from .interventions import (
        EigenShift,
        EigenShiftConfig,
        Intervention,
        applied_all,
        load_intervention,
    )
    from .models import LanguageModel, SiteOverrides, load_model
    from .scoring import Scorer, attribute_tokens, load_scorer


__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = [
    "ArtifactError",
    "DataError",
    "EigenShift",
    "EigenShiftConfig",
    "EigenshiftError",
    "EvidenceConfig",
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
    "fit_eigenshift",
    "gather",
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
