"""Mean-difference activation steering (ActAdd / CAA style, method.md section 4):
h <- h + strength * (mean_clean - mean_toxic) on one block's output (the residual stream), at
every position. Class means are over texts of each text's mean-pooled state.

Baking adds the vector to the bias of the module that writes the block's MLP output into the
residual stream. That is exact only where such a bias exists and nothing (a post-MLP norm) sits
between it and the residual add, so the base checks the bake on a probe input and undoes it
when the model disagrees with the hook.
"""

from __future__ import annotations

from typing import Self

import torch

from ..capture.activations import collect_activations
from ..capture.hooks import Site
from ..core.errors import InputError
from ..models import LanguageModel
from .base import FitInputs, Intervention, Shapes, register
from .configs import SteeringConfig
from .edits import Affine, Edit

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
    """steer: add strength x (mean clean - mean toxic) to one block's output."""

    method = "steer"
    config_class = SteeringConfig
    needs = ("data",)
    knobs = ("strength",)

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: SteeringConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        data = inputs.data
        assert data is not None  # the base checked `needs`
        data.require("steering", per_class=2)
        layer = resolve_layer(lm, config.layer)
        site = lm.arch.block_names()[layer]
        acts = collect_activations(lm, data.texts, [site], pooling="mean",
                                   batch_size=config.batch_size, max_length=config.max_length,
                                   progress=progress)[site].double()  # fmt: skip
        toxic = torch.from_numpy(data.labels.astype(bool))
        clean_mean, toxic_mean = acts[~toxic].mean(0), acts[toxic].mean(0)
        vector = (clean_mean - toxic_mean).float()
        params = {
            "layer": layer,
            "site": site,
            "strength": float(config.strength),
            "vector_norm": float(vector.norm()),
            "state_norm": float(acts.norm(dim=1).mean()),  # how big the shift is next to h
        }
        meta = cls.new_meta(lm, params, [site], data_hashes={"data": data.hash()},
                            stats={"n_texts": len(data), "n_toxic": data.n_toxic})  # fmt: skip
        return cls({"vector": vector}, meta)

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        self.param("site", str)
        return {"vector": (lm.arch.hidden_size if lm else None,)}

    @property
    def strength(self) -> float:
        return float(self.params["strength"])

    def edits(self, lm: LanguageModel) -> list[Edit]:
        if self.strength == 0:
            return []
        shift = self.strength * self.tensors["vector"]
        block = self.params["site"]
        on_device = shift.to(*lm.placement(block))
        # The residual shift lands in the bias of the projection that writes the MLP output into
        # the residual stream, where that is exact; the base checks it on a probe.
        writer = Site(f"{block}.{lm.arch.mlp_site}", "output")
        return [Edit(Site(block, "output"), lambda h: h + on_device, Affine(shift=shift),
                     fold_at=writer)]  # fmt: skip

    def describe(self, lm: LanguageModel) -> str:
        p = self.params
        return (f"steer: layer {p['layer']}, |vector| {p['vector_norm']:.3g} (mean |h| "
                f"{p['state_norm']:.3g}), strength {p['strength']:g}")  # fmt: skip
