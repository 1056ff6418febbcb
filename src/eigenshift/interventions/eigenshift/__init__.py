"""EigenShift as a sub-package: its config (free of torch), the edit and its fit (`method`),
the decomposition, the stability of a selection, and the tokens each direction promotes."""

from typing import TYPE_CHECKING

from ...core.lazy import lazy_names

if TYPE_CHECKING:
    from .config import EigenShiftConfig
    from .method import EigenShift, EigenShiftFit

__getattr__, __dir__ = lazy_names(__name__, {
    "EigenShiftConfig": "config", "EigenShift": "method", "EigenShiftFit": "method",
})  # fmt: skip
__all__ = ["EigenShift", "EigenShiftConfig", "EigenShiftFit"]
