"""Models: loading from any source, and the named sites of each architecture family."""

from .architecture import FAMILIES, Architecture, SiteOverrides, detect_architecture, get_module
from .language_model import Batch, LanguageModel, positions_from_mask
from .loading import EMBEDDED_MODELS, load_model, resolve_spec

__all__ = [
    "EMBEDDED_MODELS",
    "FAMILIES",
    "Architecture",
    "Batch",
    "LanguageModel",
    "SiteOverrides",
    "detect_architecture",
    "get_module",
    "load_model",
    "positions_from_mask",
    "resolve_spec",
]
