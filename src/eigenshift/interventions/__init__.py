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
from .experts import AurA, Damp, Det0
from .identity import ScaleUnembeddingInput
from .steering import MeanDifferenceSteering
from .transport import LinearAcT, fit_transport

__all__ = [
    "META_FILE",
    "REGISTRY",
    "TENSORS_FILE",
    "ArtifactMeta",
    "AurA",
    "Damp",
    "Det0",
    "EigenShift",
    "EigenShiftConfig",
    "EigenShiftFit",
    "Intervention",
    "LinearAcT",
    "MeanDifferenceSteering",
    "ScaleUnembeddingInput",
    "applied_all",
    "fit_transport",
    "load_intervention",
    "read_meta",
    "register",
]
