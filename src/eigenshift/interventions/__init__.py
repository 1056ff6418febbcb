"""Interventions on one shared base; methods register themselves by name."""

from .base import (
    META_FILE,
    NEEDS,
    REGISTRY,
    TENSORS_FILE,
    ArtifactMeta,
    FitInputs,
    Intervention,
    applied_all,
    load_intervention,
    load_interventions,
    read_meta,
    register,
)
from .edits import Affine, Edit
from .eigenshift import EigenShift, EigenShiftConfig, EigenShiftFit
from .experts import AurA, Damp, Det0, ExpertConfig
from .identity import IdentityConfig, ScaleUnembeddingInput
from .steering import MeanDifferenceSteering, SteeringConfig
from .transport import LinearAcT, TransportConfig, fit_transport

__all__ = [
    "META_FILE",
    "NEEDS",
    "REGISTRY",
    "TENSORS_FILE",
    "Affine",
    "ArtifactMeta",
    "AurA",
    "Damp",
    "Det0",
    "Edit",
    "EigenShift",
    "EigenShiftConfig",
    "EigenShiftFit",
    "ExpertConfig",
    "FitInputs",
    "IdentityConfig",
    "Intervention",
    "LinearAcT",
    "MeanDifferenceSteering",
    "ScaleUnembeddingInput",
    "SteeringConfig",
    "TransportConfig",
    "applied_all",
    "fit_transport",
    "load_intervention",
    "load_interventions",
    "read_meta",
    "register",
]
