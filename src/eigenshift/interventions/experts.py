"""The expert-neuron baselines of method.md section 4, on the locate step's neuron scores:

- AurA: every unit with AUROC > 0.5 is scaled by 1 - 2 (AUROC - 0.5) = 1 - Gini (others untouched);
- Det-0: the top-k units by AUROC, across all sites, are set to 0;
- Damp: the same top-k are scaled by a fixed alpha (default 0.5).

All three are a per-unit scale at the scored sites (the MLP hidden units by default), applied at
every token position; baking folds it into the down projection's input columns, exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Self, get_args

import numpy as np
import torch

from ..core.errors import InputError
from ..models import LanguageModel, check_sites, site_modules
from .base import FitInputs, Intervention, Shapes, register
from .configs import ExpertConfig, Score
from .edits import Edit
from .units import unit_count, unit_edits

if TYPE_CHECKING:
    from ..locate.neurons import NeuronScores

DEFAULT_K_FRACTION = 0.01  # Det-0 / Damp: the top 1% of scored units unless k is given



def expert_scores(scores: NeuronScores, score: str) -> np.ndarray:
    if score == "auroc":
        return scores.auroc
    if score == "auroc_length_matched":
        if scores.auroc_length_matched is None:
            raise InputError("these neuron scores have no length-matched AUROC: run "
                             "`eigenshift locate neurons --length-bins 10`")  # fmt: skip
        return scores.auroc_length_matched
    raise InputError(f"score must be one of {', '.join(get_args(Score))}, not '{score}'")


def aura_factors(auroc: np.ndarray, k: int | None = None) -> np.ndarray:
    """1 - 2 (AUROC - 0.5) on units above 0.5 (only the top k of them, when k is given)."""
    factors = np.ones_like(auroc, dtype=np.float64)
    experts = np.flatnonzero(auroc > 0.5)
    if k is not None:
        experts = experts[np.argsort(-auroc[experts], kind="stable")[:k]]
    factors[experts] = 1.0 - 2.0 * (auroc[experts] - 0.5)
    return factors


def top_k_factors(auroc: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """alpha on the k highest-AUROC units (ties broken by position: deterministic), 1 elsewhere."""
    factors = np.ones_like(auroc, dtype=np.float64)
    factors[np.argsort(-auroc, kind="stable")[:k]] = alpha
    return factors


class ExpertScaling(Intervention):
    """A per-unit scale from neuron expert scores; subclasses say how scores become factors."""

    config_class = ExpertConfig
    needs = ("neurons",)
    default_alpha: ClassVar[float | None] = None
    top_k: ClassVar[bool] = True  # edits the top k units (AurA: every unit above 0.5)

    @classmethod
    def factors(cls, auroc: np.ndarray, k: int | None, alpha: float | None) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: ExpertConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        neurons = inputs.neurons
        assert neurons is not None  # the base checked `needs`
        check_sites(lm, neurons.sites, neurons.widths)
        values = expert_scores(neurons, config.score)
        n = len(values)
        k = config.k
        if k is not None and not 0 <= k <= n:
            raise InputError(f"k must be between 0 and the {n} scored units, got {k}")
        if config.k_fraction is not None:
            k = round(config.k_fraction * n)
        if k is None and cls.top_k:
            k = round(DEFAULT_K_FRACTION * n)
        alpha = cls.default_alpha if config.alpha is None else config.alpha
        factors = cls.factors(values, k, alpha)
        params = {
            "sites": neurons.sites,
            "widths": neurons.widths,
            "k": k,
            "alpha": alpha,
            "score": config.score,
            "edited_units": int((factors != 1).sum()),
            "neurons": {key: neurons.meta.get(key) for key in ("model", "data", "n_texts")},
            "pooling": neurons.meta.get("config", {}).get("pooling"),
        }
        data_hashes = {"neurons": neurons.meta["data_hash"]} if "data_hash" in neurons.meta else {}
        meta = cls.new_meta(lm, params, site_modules(neurons.sites), data_hashes=data_hashes)
        return cls({"factors": torch.from_numpy(factors).float()}, meta)

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        return {"factors": (unit_count(self, lm),)}

    def edits(self, lm: LanguageModel) -> list[Edit]:
        widths = [int(w) for w in self.params["widths"]]
        return unit_edits(lm, self.params["sites"], widths, self.tensors["factors"])

    def describe(self, lm: LanguageModel) -> str:
        p = self.params
        return (f"{self.method}: {p['edited_units']} of {sum(p['widths'])} units edited "
                f"(k = {p['k']}, alpha = {p['alpha']})")  # fmt: skip


@register
class AurA(ExpertScaling):
    """AurA: scale every unit with AUROC > 0.5 by 1 - 2 (AUROC - 0.5)."""

    method = "aura"
    top_k = False

    @classmethod
    def factors(cls, auroc: np.ndarray, k: int | None, alpha: float | None) -> np.ndarray:
        if alpha is not None:
            raise InputError("AurA takes no alpha: its factor is 1 - 2 (AUROC - 0.5) per unit "
                             "(use damp for a fixed factor)")  # fmt: skip
        return aura_factors(auroc, k)


@register
class Det0(ExpertScaling):
    """Det-0: set the top-k units by AUROC to zero."""

    method = "det0"

    @classmethod
    def factors(cls, auroc: np.ndarray, k: int | None, alpha: float | None) -> np.ndarray:
        if alpha is not None:
            raise InputError("Det-0 sets its units to 0 and takes no alpha (use damp)")
        assert k is not None
        return top_k_factors(auroc, k, 0.0)


@register
class Damp(ExpertScaling):
    """Damp: scale the top-k units by AUROC by a fixed alpha."""

    method = "damp"
    default_alpha = 0.5

    @classmethod
    def factors(cls, auroc: np.ndarray, k: int | None, alpha: float | None) -> np.ndarray:
        assert alpha is not None and k is not None
        return top_k_factors(auroc, k, alpha)
