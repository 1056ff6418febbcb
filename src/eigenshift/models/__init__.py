"""Models: loading from any source, and the named sites of each architecture family."""

from .architecture import FAMILIES, Architecture, SiteOverrides, detect_architecture, get_module
from .language_model import Batch, LanguageModel, positions_from_mask
from .loading import EMBEDDED_MODELS, ModelOptions, load_model, resolve_spec
from .sites import check_sites, resolve_sites, site_modules, site_width

__all__ = [
    "EMBEDDED_MODELS",
    "FAMILIES",
    "Architecture",
    "Batch",
    "LanguageModel",
    "ModelOptions",
    "SiteOverrides",
    "check_sites",
    "detect_architecture",
    "get_module",
    "load_model",
    "positions_from_mask",
    "resolve_sites",
    "resolve_spec",
    "site_modules",
    "site_width",
]
