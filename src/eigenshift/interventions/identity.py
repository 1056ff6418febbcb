"""A per-coordinate scale of the unembedding input: the identity when fitted with scale 1, which
makes it the control that checks the shared machinery (apply, bake, save, load, refusal) end to
end, and the smallest example of a method (docs/architecture.md walks through a copy of it)."""

from __future__ import annotations

from typing import Self

import torch

from ..capture.hooks import Site
from ..models import LanguageModel
from .base import FitInputs, Intervention, Shapes, register
from .configs import IdentityConfig
from .edits import Affine, Edit


@register
class ScaleUnembeddingInput(Intervention):
    """identity: scale the unembedding input (a control; scale 1 changes nothing)."""

    method = "identity"
    config_class = IdentityConfig

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: IdentityConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        return cls.from_scale(lm, torch.full((lm.arch.hidden_size,), config.scale))

    @classmethod
    def from_scale(cls, lm: LanguageModel, scale: torch.Tensor) -> Self:
        """A given per-coordinate scale (tests and controls)."""
        d = lm.arch.hidden_size
        meta = cls.new_meta(lm, {"hidden_size": d}, [lm.arch.unembedding])
        return cls({"scale": scale.detach().float().reshape(d).clone()}, meta)

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        return {"scale": (lm.arch.hidden_size if lm else self.param("hidden_size", int),)}

    def edits(self, lm: LanguageModel) -> list[Edit]:
        scale = self.tensors["scale"]
        site = Site(lm.arch.unembedding, "input")
        on_device = scale.to(*lm.placement(site.module))
        return [Edit(site, lambda h: h * on_device, Affine(scale=scale))]
