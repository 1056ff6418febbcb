"""Interventions on one shared base; methods register themselves by name.

Every module of this package is imported here, so a new method is one new module: its
`@register` runs, and `fit METHOD`, `load_intervention` and the sweep find it by name.
"""

import importlib
import pkgutil

from .base import (
    META_FILE,
    NEEDS,
    REGISTRY,
    TENSORS_FILE,
    ArtifactMeta,
    FitInputs,
    Intervention,
    applied_all,
    applied_or_not,
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
    "applied_or_not",
    "fit_transport",
    "load_intervention",
    "load_interventions",
    "read_meta",
    "register",
]

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
