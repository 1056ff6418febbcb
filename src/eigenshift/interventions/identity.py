"""A per-coordinate scale of the unembedding input: the identity when fitted, which makes it the
control that checks the shared machinery (apply, bake, save, load, refusal) end to end."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Self

import torch

from ..hooks import transform
from ..models import LanguageModel
from .base import Intervention, register


@register
class ScaleUnembeddingInput(Intervention):
    method = "identity"

    @classmethod
    def fit(cls, lm: LanguageModel, scale: torch.Tensor | None = None, **_: Any) -> Self:
        d = lm.arch.hidden_size
        scale = torch.ones(d) if scale is None else scale.detach().float().reshape(d).clone()
        meta = cls.new_meta(lm, {"hidden_size": d}, [lm.arch.unembedding])
        return cls({"scale": scale}, meta)

    def hooks(self, lm: LanguageModel) -> Iterable[AbstractContextManager[Any]]:
        scale = self.tensors["scale"].to(lm.device, lm.dtype)
        return [transform(lm.unembedding, lambda h: h * scale, side="input")]

    def _bake(self, lm: LanguageModel) -> None:
        lm.untie_unembedding()
        weight = lm.unembedding.weight
        with torch.no_grad():
            weight.mul_(self.tensors["scale"].to(weight.device, weight.dtype))
