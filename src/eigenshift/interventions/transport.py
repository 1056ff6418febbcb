"""Linear-AcT and Mean-AcT (Rodriguez et al. 2025; method.md section 4): per-unit affine transport
maps from toxic (source) to non-toxic (target) activations, T(a) = (1 - lam) a + lam (w a + b).

- Fit: each unit's toxic and non-toxic activations (one mean-pooled value per text) are matched by
  quantile (sorting is the 1-D optimal transport plan), and w, b are the least-squares line
  through the matched pairs. Mean-AcT fixes w = 1 (b = mean difference).
- Causal: the maps of one layer are fitted on activations that already went through the maps of
  every earlier layer, as the intervention will see them. Each fitting pass stops the forward
  pass at the layer being fitted.
- Support (our default, configurable): the map acts only inside the range the toxic activations
  spanned when fitting; values never seen there are left alone, so an affine fit is never
  extrapolated. With support "all" and a site that has a bias, the edit bakes exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any, Self

import numpy as np
import torch
from tqdm.auto import tqdm

from ..activations import collect_activations
from ..data import LabelledTexts
from ..errors import InputError, NotBakeableError
from ..locate import resolve_sites
from ..models import LanguageModel
from .base import Intervention, register
from .units import fold_all, site_modules, site_width, unit_hooks

MODES = ("linear", "mean")
SUPPORTS = ("source", "all")


def fit_transport(
    source: np.ndarray, target: np.ndarray, mode: str = "linear", quantiles: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(w, b) per column mapping the source distribution onto the target one.

    Both are reduced to the same quantile levels (the sorted samples when the counts agree), so
    the i-th smallest source value is paired with the i-th smallest target value.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if mode == "mean":
        return np.ones(source.shape[1]), target.mean(0) - source.mean(0)
    if mode != "linear":
        raise InputError(f"transport mode must be one of {MODES}, not '{mode}'")
    n = quantiles or min(len(source), len(target))
    if len(source) == len(target) == n:
        a, b = np.sort(source, axis=0), np.sort(target, axis=0)
    else:
        levels = (np.arange(n) + 0.5) / n
        a, b = np.quantile(source, levels, axis=0), np.quantile(target, levels, axis=0)
    a_mean, b_mean = a.mean(0), b.mean(0)
    var = ((a - a_mean) ** 2).sum(0)
    cov = ((a - a_mean) * (b - b_mean)).sum(0)
    w = np.where(var > 1e-12, cov / np.maximum(var, 1e-12), 1.0)  # a constant unit: shift only
    return w, b_mean - w * a_mean


def affine(tensors: dict[str, torch.Tensor], strength: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of T(a) = (1 - lam) a + lam (w a + b) = scale a + shift."""
    return 1.0 + strength * (tensors["w"] - 1.0), strength * tensors["b"]


def transport_hooks(
    lm: LanguageModel,
    sites: Sequence[str],
    widths: Sequence[int],
    tensors: dict[str, torch.Tensor],
    strength: float,
    support: str,
) -> list[AbstractContextManager[Any]]:
    scale, shift = affine(tensors, strength)
    within = (tensors["lo"], tensors["hi"]) if support == "source" else None
    return unit_hooks(lm, sites, widths, scale, shift, within)


@register
class LinearAcT(Intervention):
    method = "linear-act"

    @classmethod
    def fit(
        cls,
        lm: LanguageModel,
        data: LabelledTexts | None = None,
        *,
        sites: str | None = None,
        side: str = "input",
        mode: str = "linear",
        strength: float = 1.0,
        support: str = "source",
        causal: bool = True,
        batch_size: int = 16,
        max_length: int = 128,
        progress: bool = True,
        **_: Any,
    ) -> Self:
        if data is None:
            raise InputError("Linear-AcT needs labelled texts (toxic and non-toxic)")
        if mode not in MODES:
            raise InputError(f"transport mode must be one of {MODES}, not '{mode}'")
        if support not in SUPPORTS:
            raise InputError(f"support must be one of {SUPPORTS}, not '{support}'")
        data.require("Linear-AcT", per_class=2)
        names = resolve_sites(lm, sites, side)
        widths = [site_width(lm, s) for s in names]
        toxic = data.labels.astype(bool)
        fitted: dict[str, list[torch.Tensor]] = {"w": [], "b": [], "lo": [], "hi": []}

        def collect(chosen: list[str]) -> dict[str, torch.Tensor]:
            return collect_activations(lm, data.texts, chosen, pooling="mean",
                                       batch_size=batch_size, max_length=max_length,
                                       progress=False)  # fmt: skip

        # Causal: one pass per site, with the maps fitted so far applied; otherwise one pass.
        acts = {} if causal else collect(names)
        for i, site in enumerate(tqdm(names, desc="transport", unit="site",
                                      disable=not progress)):  # fmt: skip
            if causal:
                so_far = {k: torch.cat(v).float() for k, v in fitted.items()} if i else None
                with ExitStack() as stack:
                    if so_far is not None:
                        for hook in transport_hooks(lm, names[:i], widths[:i], so_far, strength,
                                                    support):  # fmt: skip
                            stack.enter_context(hook)
                    x = collect([site])[site].numpy()
            else:
                x = acts[site].numpy()
            w, b = fit_transport(x[toxic], x[~toxic], mode)
            fitted["w"].append(torch.from_numpy(w))
            fitted["b"].append(torch.from_numpy(b))
            fitted["lo"].append(torch.from_numpy(x[toxic].min(0).astype(np.float64)))
            fitted["hi"].append(torch.from_numpy(x[toxic].max(0).astype(np.float64)))
        tensors = {k: torch.cat(v).float() for k, v in fitted.items()}
        params = {"sites": names, "widths": widths, "mode": mode, "strength": float(strength),
                  "support": support, "causal": causal}  # fmt: skip
        meta = cls.new_meta(lm, params, site_modules(names), data_hashes={"data": data.hash()},
                            stats={"n_texts": len(data), "n_toxic": data.n_toxic})  # fmt: skip
        return cls(tensors, meta)

    @property
    def strength(self) -> float:
        return float(self.params["strength"])

    def hooks(self, lm: LanguageModel) -> Iterable[AbstractContextManager[Any]]:
        if self.strength == 0:
            return []
        return transport_hooks(lm, self.params["sites"], self.params["widths"], self.tensors,
                               self.strength, self.params["support"])  # fmt: skip

    def _bake(self, lm: LanguageModel) -> None:
        if self.strength == 0:
            return
        if self.params["support"] != "all":
            raise NotBakeableError(
                "this transport acts only inside the toxic activations' range (support "
                "'source'), which no weight can express: apply it with a hook, or fit with "
                "--support all"
            )
        fold_all(lm, self.params["sites"], self.params["widths"],
                 *affine(self.tensors, self.strength))  # fmt: skip
