"""The evidence a fit learns from: toxic and clean states gathered from labelled text or the
model's own continuations (asked of an engine), under their own config. Above the engines and
the methods: EigenShift receives what `gather` returns, it never gathers."""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:
    from .config import EvidenceConfig, EvidenceRule
    from .gathering import fit_eigenshift, gather, generated_states, labelled_states

__getattr__, __dir__ = lazy_names(__name__, {
    "EvidenceConfig": "config", "EvidenceRule": "config", "gather": "gathering",
    "fit_eigenshift": "gathering",
    "generated_states": "gathering", "labelled_states": "gathering",
})  # fmt: skip
__all__ = ["EvidenceConfig", "EvidenceRule", "fit_eigenshift", "gather", "generated_states",
           "labelled_states"]  # fmt: skip
