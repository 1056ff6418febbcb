"""Which methods exist and what each takes, free of torch: the command line builds `fit METHOD`
from this table in a fraction of a second, and `Intervention.load` finds a method's class here,
importing its module only then.

A method of one's own needs no entry: `@register` on its class adds it (`base.register`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from .eigenshift.config import EigenShiftConfig

TENSORS_FILE = "intervention.safetensors"  # an artifact's tensors
META_FILE = "intervention.json"  # and everything else about it


@dataclass(frozen=True)
class MethodSpec:
    method: str  # the artifact's name and the `fit METHOD` command
    config: type[Any]  # its fields become the command's options
    summary: str  # the command's one-line help (the class docstring's first line)
    needs: tuple[str, ...] = ()  # inputs besides the model: keys of base.NEEDS
    implementation: str = ""  # "module:Class", the module under eigenshift.interventions


# The order is the order of `eigenshift fit --help`.
METHODS: dict[str, MethodSpec] = {spec.method: spec for spec in (
    MethodSpec("eigenshift", EigenShiftConfig, "dampen the unembedding directions toxic "
               "generations use.", ("states",), "eigenshift.method:EigenShift"),
    MethodSpec("aura", ExpertConfig, "scale every unit with AUROC > 0.5 by 1 - 2 (AUROC - 0.5).",
               ("neurons",), "experts:AurA"),
    MethodSpec("det0", ExpertConfig, "set the top-k units by AUROC to zero.", ("neurons",),
               "experts:Det0"),
    MethodSpec("damp", ExpertConfig, "scale the top-k units by AUROC by a fixed alpha.",
               ("neurons",), "experts:Damp"),
    MethodSpec("steer", SteeringConfig, "add strength x (mean clean - mean toxic) to one block's "
               "output.", ("data",), "steering:MeanDifferenceSteering"),
    MethodSpec("linear-act", TransportConfig, "per-unit affine transport from toxic to non-toxic "
               "activations.", ("data",), "transport:LinearAcT"),
    MethodSpec("lineas", LineasConfig, "per-unit affine maps at every site, fitted jointly end "
               "to end (LinEAS).", ("data",), "lineas:LinEAS"),
    MethodSpec("profs", ProjectionConfig, "project each block's toxic embedding directions out "
               "of its MLP output weights.", ("data",), "projection:ProFS"),
    MethodSpec("prompt", PromptConfig, "place an instruction before every prompt (no weight "
               "changes).", (), "prompting:Prompting"),
    MethodSpec("stack", StackConfig, "apply fitted interventions together, in order, as one "
               "edit.", ("members",), "stack:Stack"),
    MethodSpec("identity", IdentityConfig, "scale the unembedding input (a control; scale 1 "
               "changes nothing).", (), "identity:ScaleUnembeddingInput"),
)}  # fmt: skip
