"""Mean-difference activation steering (ActAdd / CAA style, method.md section 4):
h <- h + strength * (mean_clean - mean_toxic) on one block's output (the residual stream), at
every position. Class means are over texts of each text's mean-pooled state.

Baking adds the vector to the bias of the module that writes the block's MLP output into the
residual stream. That is exact only where such a bias exists and nothing (a post-MLP norm) sits
between it and the residual add, so the bake checks itself on a probe input and undoes itself
when the model disagrees with the hook.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, Self

import torch

from ..activations import collect_activations
from ..data import LabelledTexts
from ..errors import InputError, NotBakeableError
from ..hooks import capture, transform
from ..models import LanguageModel
from .base import Intervention, register

PROBE = "The quick brown fox jumps over the lazy dog, and then it rests."
DEFAULT_DEPTH = 0.6  # RQ2: decoders' expertise peaks at relative depth 0.6-0.8


def resolve_layer(lm: LanguageModel, layer: int | None) -> int:
    n = lm.arch.num_layers
    if layer is None:
        return min(n - 1, int(DEFAULT_DEPTH * n))
    if not -n <= layer < n:
        raise InputError(f"layer must be in [{-n}, {n - 1}] for this {n}-layer model, got {layer}")
    return layer % n


@register
class MeanDifferenceSteering(Intervention):
    method = "steer"

    @classmethod
    def fit(
        cls,
        lm: LanguageModel,
        data: LabelledTexts | None = None,
        *,
        layer: int | None = None,
        strength: float = 1.0,
        batch_size: int = 16,
        max_length: int = 128,
        progress: bool = True,
        **_: Any,
    ) -> Self:
        if data is None:
            raise InputError("steering needs labelled texts (toxic and non-toxic)")
        data.require("steering", per_class=2)
        layer = resolve_layer(lm, layer)
        site = lm.arch.block_names()[layer]
        acts = collect_activations(lm, data.texts, [site], pooling="mean", batch_size=batch_size,
                                   max_length=max_length, progress=progress)[site].double()
        toxic = torch.from_numpy(data.labels.astype(bool))
        clean_mean, toxic_mean = acts[~toxic].mean(0), acts[toxic].mean(0)
        vector = (clean_mean - toxic_mean).float()
        params = {
            "layer": layer,
            "site": site,
            "strength": float(strength),
            "vector_norm": float(vector.norm()),
            "state_norm": float(acts.norm(dim=1).mean()),  # how big the shift is next to h
        }
        meta = cls.new_meta(lm, params, [site], data_hashes={"data": data.hash()},
                            stats={"n_texts": len(data), "n_toxic": data.n_toxic})  # fmt: skip
        return cls({"vector": vector}, meta)

    @property
    def strength(self) -> float:
        return float(self.params["strength"])

    def hooks(self, lm: LanguageModel) -> Iterable[AbstractContextManager[Any]]:
        if self.strength == 0:
            return []
        shift = (self.strength * self.tensors["vector"]).to(lm.device, lm.dtype)
        return [transform(lm.module(self.params["site"]), lambda h: h + shift, side="output")]

    def _bake(self, lm: LanguageModel) -> None:
        if self.strength == 0:
            return
        writer = lm.module(f"{self.params['site']}.{lm.arch.mlp_site}")
        bias = getattr(writer, "bias", None)
        if bias is None:
            raise NotBakeableError(
                f"steering adds a vector to the residual stream, and this {lm.arch.family} "
                f"block's MLP output projection ('{lm.arch.mlp_site}') has no bias to fold it "
                "into: apply it with a hook (`with intervention.applied(model):`)"
            )
        block = lm.module(self.params["site"])
        batch = lm.encode([PROBE])
        # the steering hook first, so the capture after it sees the steered output
        with torch.inference_mode(), self.applied(lm), capture(block) as hooked:
            lm.model(**batch.model_inputs())
        before = bias.detach().clone()
        with torch.no_grad():
            bias.add_((self.strength * self.tensors["vector"]).to(bias.device, bias.dtype))
        with torch.inference_mode(), capture(block) as baked:
            lm.model(**batch.model_inputs())
        if not torch.allclose(hooked[0], baked[0], atol=1e-4, rtol=1e-3):
            with torch.no_grad():
                bias.copy_(before)
            raise NotBakeableError(
                f"in this {lm.arch.family} block the MLP output is transformed (e.g. normalised) "
                "before it reaches the residual stream, so a bias cannot carry the steering "
                "vector: apply it with a hook"
            )
