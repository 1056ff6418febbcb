"""Models: loading from any source, and the named sites of each architecture family. Names load
on first use (`core.lazy`): `models.options` alone stays free of torch."""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:
    from .architecture import FAMILIES, Architecture, detect_architecture, get_module
    from .language_model import Batch, LanguageModel, positions_from_mask
    from .loading import load_model, resolve_spec
    from .options import EMBEDDED_MODELS, ModelOptions, SiteOverrides
    from .sites import check_sites, resolve_sites, site_modules, site_width

__getattr__, __dir__ = lazy_names(__name__, {
    "FAMILIES": "architecture", "Architecture": "architecture",
    "detect_architecture": "architecture", "get_module": "architecture",
    "Batch": "language_model", "LanguageModel": "language_model",
    "positions_from_mask": "language_model",
    "load_model": "loading", "resolve_spec": "loading",
    "EMBEDDED_MODELS": "options", "ModelOptions": "options", "SiteOverrides": "options",
    "check_sites": "sites", "resolve_sites": "sites", "site_modules": "sites",
    "site_width": "sites",
})  # fmt: skip
__all__ = ["EMBEDDED_MODELS", "FAMILIES", "Architecture", "Batch", "LanguageModel",
           "ModelOptions", "SiteOverrides", "check_sites", "detect_architecture", "get_module",
           "load_model", "positions_from_mask", "resolve_sites", "resolve_spec", "site_modules",
           "site_width"]  # fmt: skip
