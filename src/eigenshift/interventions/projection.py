"""ProFS (Uppaal et al., ICLR 2025, method.md section 4b): per block in a band, the toxic
directions of its sentence embeddings projected out of its MLP output weights, W <- (I - P) W.

Per block l: each text's embedding is its residual stream after the block, averaged over its real
tokens (the reference averages pad positions too). The difference matrix holds each toxic text's
embedding minus the clean texts' mean: the reference pairs a toxic and a clean text written from
the same prompt, and labelled data has no pairs, so the clean mean stands in for the partner.
With centering, the clean embeddings' top singular direction (the corpus-wide one, taken from
the raw embeddings as the reference does) is projected out of every row first. P_l = V_k V_k^T
from the top-k right singular vectors of that matrix, one P per block.

The edit sits on the output side of the block's MLP output projection: a pure weight edit that
bakes exactly (biases are projected too, where the family has them) and exports with no hook.
`strength` scales the removal (1: the published edit).
"""

from __future__ import annotations

from typing import Self

import torch

from ..capture.activations import collect_activations
from ..capture.hooks import Site
from ..core.errors import InputError
from ..models import LanguageModel
from .base import FitInputs, Intervention, Shapes, register
from .configs import ProjectionConfig
from .edits import Affine, Edit


def layer_band(n: int, first: float, last: float) -> list[int]:
    """Blocks [round(first n), round(last n)), never empty."""
    lo, hi = round(first * n), round(last * n)
    return list(range(min(lo, n - 1), max(hi, min(lo, n - 1) + 1)))


def toxic_directions(
    toxic: torch.Tensor, clean: torch.Tensor, k: int, centering: bool
) -> torch.Tensor:
    """(d, k) orthonormal: the top right singular vectors of toxic minus the clean mean, after
    the clean embeddings' top singular direction is removed from every row (float64)."""
    diff = toxic.double() - clean.double().mean(0)
    if centering:
        corpus = torch.linalg.svd(clean.double(), full_matrices=False).Vh[0]
        diff = diff - torch.outer(diff @ corpus, corpus)
    vh = torch.linalg.svd(diff, full_matrices=False).Vh
    if k > vh.shape[0]:
        raise InputError(f"k = {k} toxic directions need at least {k} toxic texts, got "
                         f"{vh.shape[0]}")  # fmt: skip
    return vh[:k].T.contiguous()


@register
class ProFS(Intervention):
    """profs: project each block's toxic embedding directions out of its MLP output weights."""

    method = "profs"
    config_class = ProjectionConfig
    needs = ("data",)
    knobs = ("strength",)

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: ProjectionConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        data = inputs.data
        assert data is not None  # the base checked `needs`
        data.require("ProFS", per_class=max(config.k, 2))
        layers = layer_band(lm.arch.num_layers, config.first_layer, config.last_layer)
        blocks = [lm.arch.block_names()[i] for i in layers]
        acts = collect_activations(lm, data.texts, blocks, pooling="mean",
                                   batch_size=config.batch_size, max_length=config.max_length,
                                   progress=progress)  # fmt: skip
        toxic = torch.from_numpy(data.labels.astype(bool))
        directions = torch.stack([toxic_directions(acts[b][toxic], acts[b][~toxic], config.k,
                                                   config.centering) for b in blocks])  # fmt: skip
        sites = [f"{b}.{lm.arch.mlp_site}" for b in blocks]
        params = {"layers": layers, "sites": sites, "k": config.k, "centering": config.centering,
                  "strength": float(config.strength)}  # fmt: skip
        meta = cls.new_meta(lm, params, sites, data_hashes={"data": data.hash()},
                            stats={"n_texts": len(data), "n_toxic": data.n_toxic})  # fmt: skip
        return cls({"directions": directions.float()}, meta)

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        sites = self.param("sites", list)
        return {"directions": (len(sites), lm.arch.hidden_size if lm else None, None)}

    @property
    def strength(self) -> float:
        return float(self.params["strength"])

    def edits(self, lm: LanguageModel) -> list[Edit]:
        if self.strength == 0:
            return []
        edits, scale = [], self.strength
        for site, v in zip(self.params["sites"], self.tensors["directions"], strict=True):
            on_device = v.to(*lm.placement(site))

            def project(a: torch.Tensor, v: torch.Tensor = on_device) -> torch.Tensor:
                return a - scale * ((a @ v) @ v.T)

            edits.append(Edit(Site(site, "output"), project, Affine(left=scale * v, right=v)))
        return edits

    def describe(self, lm: LanguageModel) -> str:
        p = self.params
        return (f"profs: k {p['k']} directions out of blocks {p['layers'][0]}-{p['layers'][-1]}'s "
                f"MLP output, strength {p['strength']:g}"
                + ("" if p["centering"] else ", no centering"))  # fmt: skip
