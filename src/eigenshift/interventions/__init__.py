"""Interventions on one shared base (`base.py`): each method a pure fitter over declared inputs
(`data`, `neurons`, `states`) that returns an edit, saved as safetensors + JSON.

`registry.METHODS` lists the built-in methods without importing them; names here load on first
use (`core.lazy`), so the command line reads the configs without torch.
"""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:
    from .artifact import ArtifactMeta, read_meta
    from .base import (
        META_FILE,
        NEEDS,
        TENSORS_FILE,
        FitInputs,
        Intervention,
        applied_all,
        applied_or_not,
        load_intervention,
        load_interventions,
        method_class,
        register,
    )
    from .configs import (
        ExpertConfig,
        IdentityConfig,
        LineasConfig,
        ProjectionConfig,
        PromptConfig,
        StackConfig,
        SteeringConfig,
        TransportConfig,
    )
    from .edits import Affine, Edit
    from .eigenshift import EigenShift, EigenShiftConfig, EigenShiftFit
    from .experts import AurA, Damp, Det0
    from .identity import ScaleUnembeddingInput
    from .lineas import LinEAS
    from .projection import ProFS
    from .prompting import Prompting
    from .registry import METHODS, MethodSpec
    from .stack import Stack
    from .steering import MeanDifferenceSteering
    from .transport import LinearAcT, fit_transport

_WHERE = {
    **dict.fromkeys(("META_FILE", "NEEDS", "TENSORS_FILE", "FitInputs",
                     "Intervention", "applied_all", "applied_or_not", "load_intervention",
                     "load_interventions", "method_class", "register"), "base"),
    "ArtifactMeta": "artifact", "read_meta": "artifact",
    **dict.fromkeys(("ExpertConfig", "IdentityConfig", "LineasConfig", "ProjectionConfig",
                     "PromptConfig", "StackConfig", "SteeringConfig", "TransportConfig"),
                    "configs"),
    "Affine": "edits", "Edit": "edits",
    "EigenShift": "eigenshift.method", "EigenShiftFit": "eigenshift.method",
    "EigenShiftConfig": "eigenshift.config",
    "AurA": "experts", "Damp": "experts", "Det0": "experts",
    "ScaleUnembeddingInput": "identity",
    "LinEAS": "lineas",
    "ProFS": "projection",
    "Prompting": "prompting",
    "METHODS": "registry", "MethodSpec": "registry",
    "MeanDifferenceSteering": "steering",
    "Stack": "stack",
    "LinearAcT": "transport", "fit_transport": "transport",
}  # fmt: skip
__getattr__, __dir__ = lazy_names(__name__, _WHERE)
__all__ = [
    "META_FILE",
    "METHODS",
    "NEEDS",
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
    "LinEAS",
    "LinearAcT",
    "LineasConfig",
    "MeanDifferenceSteering",
    "MethodSpec",
    "ProFS",
    "ProjectionConfig",
    "PromptConfig",
    "Prompting",
    "ScaleUnembeddingInput",
    "Stack",
    "StackConfig",
    "SteeringConfig",
    "TransportConfig",
    "applied_all",
    "applied_or_not",
    "fit_transport",
    "load_intervention",
    "load_interventions",
    "method_class",
    "read_meta",
    "register",
]  # fmt: skip
