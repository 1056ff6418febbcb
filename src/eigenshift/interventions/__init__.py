"""Interventions on one shared base; methods register themselves by name."""

from .base import (
    META_FILE,
    REGISTRY,
    TENSORS_FILE,
    ArtifactMeta,
    Intervention,
    applied_all,
    load_intervention,
    read_meta,
    register,
)
from .eigenshift import EigenShift, EigenShiftConfig, EigenShiftFit
from .identity import ScaleUnembeddingInput

__all__ = [
    "META_FILE",
    "REGISTRY",
    "TENSORS_FILE",
    "ArtifactMeta",
    "EigenShift",
    "EigenShiftConfig",
    "EigenShiftFit",
    "Intervention",
    "ScaleUnembeddingInput",
    "applied_all",
    "load_intervention",
    "read_meta",
    "register",
]
