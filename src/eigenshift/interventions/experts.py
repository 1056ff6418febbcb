"""The expert-neuron baselines of method.md section 4, on the locate step's neuron scores:

- AurA: every unit with AUROC > 0.5 is scaled by 1 - 2 (AUROC - 0.5) = 1 - Gini (others untouched);
- Det-0: the top-k units by AUROC, across all sites, are set to 0;
- Damp: the same top-k are scaled by a fixed alpha (default 0.5).

All three are a per-unit scale at the scored sites (the MLP hidden units by default), applied at
every token position; baking folds it into the down projection's input columns, exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Self

import numpy as np
import torch

from ..errors import InputError
from ..locate import NeuronScores
from ..models import LanguageModel
from .base import Intervention, register
from .units import check_sites, fold_all, site_modules, unit_hooks

DEFAULT_K_FRACTION = 0.01  # Det-0 / Damp: the top 1% of scored units unless k is given
SCORES = ("auroc", "auroc_length_matched")


def expert_scores(scores: NeuronScores, score: str) -> np.ndarray:
    if score == "auroc":
        return scores.auroc
    if score == "auroc_length_matched":
        if scores.auroc_length_matched is None:
            raise InputError("these neuron scores have no length-matched AUROC: run "
                             "`eigenshift locate neurons --length-bins 10`")  # fmt: skip
        return scores.auroc_length_matched
    raise InputError(f"score must be one of {SCORES}, not '{score}'")


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

    default_alpha: ClassVar[float | None] = None
    top_k: ClassVar[bool] = True  # edits the top k units (AurA: every unit above 0.5)

    @classmethod
    def factors(cls, auroc: np.ndarray, k: int | None, alpha: float | None) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def fit(
        cls,
        lm: LanguageModel,
        neurons: NeuronScores | None = None,
        *,
        k: int | None = None,
        k_fraction: float | None = None,
        alpha: float | None = None,
        score: str = "auroc",
        **_: Any,
    ) -> Self:
        if neurons is None:
            raise InputError(f"'{cls.method}' needs neuron scores: run `eigenshift locate "
                             "neurons` and pass its folder")  # fmt: skip
        check_sites(lm, neurons.sites, neurons.widths)
        values = expert_scores(neurons, score)
        n = len(values)
        if k is not None and not 0 <= k <= n:
            raise InputError(f"k must be between 0 and the {n} scored units, got {k}")
        if k is not None and k_fraction is not None:
            raise InputError("give k or a k fraction, not both")
        if k_fraction is not None:
            if not 0 < k_fraction <= 1:
                raise InputError(f"k fraction must be in (0, 1], got {k_fraction}")
            k = round(k_fraction * n)
        if k is None and cls.top_k:
            k = round(DEFAULT_K_FRACTION * n)
        alpha = cls.default_alpha if alpha is None else alpha
        factors = cls.factors(values, k, alpha)
        params = {
            "sites": neurons.sites,
            "widths": neurons.widths,
            "k": k,
            "alpha": alpha,
            "score": score,
            "edited_units": int((factors != 1).sum()),
            "neurons": {key: neurons.meta.get(key) for key in ("model", "data", "n_texts")},
            "pooling": neurons.meta.get("config", {}).get("pooling"),
        }
        data_hashes = {"neurons": neurons.meta["data_hash"]} if "data_hash" in neurons.meta else {}
        meta = cls.new_meta(lm, params, site_modules(neurons.sites), data_hashes=data_hashes)
        return cls({"factors": torch.from_numpy(factors).float()}, meta)

    @property
    def sites(self) -> list[str]:
        return list(self.params["sites"])

    @property
    def widths(self) -> list[int]:
        return [int(w) for w in self.params["widths"]]

    def hooks(self, lm: LanguageModel) -> Iterable[AbstractContextManager[Any]]:
        return unit_hooks(lm, self.sites, self.widths, self.tensors["factors"])

    def _bake(self, lm: LanguageModel) -> None:
        fold_all(lm, self.sites, self.widths, self.tensors["factors"])


@register
class AurA(ExpertScaling):
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
    method = "det0"

    @classmethod
    def factors(cls, auroc: np.ndarray, k: int | None, alpha: float | None) -> np.ndarray:
        if alpha is not None:
            raise InputError("Det-0 sets its units to 0 and takes no alpha (use damp)")
        assert k is not None
        return top_k_factors(auroc, k, 0.0)


@register
class Damp(ExpertScaling):
    method = "damp"
    default_alpha = 0.5

    @classmethod
    def factors(cls, auroc: np.ndarray, k: int | None, alpha: float | None) -> np.ndarray:
        assert alpha is not None and k is not None
        return top_k_factors(auroc, k, alpha)
