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

from collections.abc import Sequence
from typing import Self

import numpy as np
import torch
from tqdm.auto import tqdm

from ..capture.activations import collect_activations, pool_site
from ..capture.hooks import Site, capture
from ..capture.replay import Trunk, site_blocks
from ..core.errors import InputError
from ..data import LabelledTexts
from ..models import LanguageModel, resolve_sites, site_modules, site_width
from ..models.language_model import accepts_logits_to_keep
from .base import FitInputs, Intervention, Shapes, register
from .configs import TransportConfig
from .edits import Edit, installed
from .units import unit_count, unit_edits


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
        raise InputError(f"transport mode must be one of linear, mean, not '{mode}'")
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


OUTSIDE_SUPPORT = (
    "this transport acts only inside the toxic activations' range (support 'source'), which no "
    "weight can express"
)


def transport_edits(
    lm: LanguageModel,
    sites: Sequence[str],
    widths: Sequence[int],
    tensors: dict[str, torch.Tensor],
    strength: float,
    support: str,
) -> list[Edit]:
    scale, shift = affine(tensors, strength)
    within = (tensors["lo"], tensors["hi"]) if support == "source" else None
    return unit_edits(lm, sites, widths, scale, shift, within, why_not=OUTSIDE_SUPPORT)


Fitted = dict[str, torch.Tensor]  # w, b, lo, hi: one value per unit of the sites fitted so far


def _fit_site(x: np.ndarray, data: LabelledTexts, config: TransportConfig) -> Fitted:
    """The maps of one site's units from its pooled activations (one row per text)."""
    toxic = data.labels.astype(bool)
    w, b = fit_transport(x[toxic], x[~toxic], config.mode)
    return {"w": torch.from_numpy(w), "b": torch.from_numpy(b),
            "lo": torch.from_numpy(x[toxic].min(0).astype(np.float64)),
            "hi": torch.from_numpy(x[toxic].max(0).astype(np.float64))}  # fmt: skip


def _stack(per_site: Sequence[Fitted]) -> Fitted:
    return {k: torch.cat([f[k] for f in per_site]).float() for k in ("w", "b", "lo", "hi")}


def _collect(
    lm: LanguageModel, data: LabelledTexts, sites: list[str], config: TransportConfig,
    progress: bool = False,
) -> dict[str, torch.Tensor]:  # fmt: skip
    return collect_activations(lm, data.texts, sites, pooling="mean",
                               batch_size=config.batch_size, max_length=config.max_length,
                               progress=progress)  # fmt: skip


def _maps_so_far(
    lm: LanguageModel, sites: Sequence[str], widths: Sequence[int], per_site: Sequence[Fitted],
    config: TransportConfig,
) -> list[Edit]:  # fmt: skip
    """The edits of the sites fitted so far, as the intervention will make them."""
    if not per_site:
        return []
    n = len(per_site)
    return transport_edits(lm, sites[:n], widths[:n], _stack(per_site), config.strength,
                           config.support)  # fmt: skip


def causal_by_passes(
    lm: LanguageModel, data: LabelledTexts, sites: list[str], widths: list[int],
    config: TransportConfig, progress: bool = True,
) -> Fitted:  # fmt: skip
    """One forward pass per site (each stopping at it) with the earlier sites' maps applied:
    right for any site, and what `causal_by_replay` falls back to."""
    per_site: list[Fitted] = []
    for site in tqdm(sites, desc="transport", unit="site", disable=not progress):
        with installed(lm, _maps_so_far(lm, sites, widths, per_site, config)):
            x = _collect(lm, data, [site], config)[site].numpy()
        per_site.append(_fit_site(x, data, config))
    return _stack(per_site)


def causal_by_replay(
    lm: LanguageModel, data: LabelledTexts, sites: list[str], widths: list[int],
    config: TransportConfig, progress: bool = True,
) -> Fitted | None:  # fmt: skip
    """The same fit in about three passes' time: one ordinary pass keeps what enters the first
    fitted block, then every text moves one block at a time, each block run once to read its
    sites and once with their maps to feed the next. None when the sites are not inside blocks
    in order, or this family cannot be replayed."""
    trunk = Trunk(lm)
    blocks = site_blocks(trunk, sites)
    if blocks is None:
        return None
    first = blocks[0]
    order = sorted(range(len(data.texts)), key=lambda i: len(data.texts[i]))
    chunks = [order[s : s + config.batch_size] for s in range(0, len(order), config.batch_size)]
    entries, hidden = [], []
    for n, idx in enumerate(tqdm(chunks, desc="transport (one pass)", unit="batch",
                                 disable=not progress)):  # fmt: skip
        batch = lm.encode([data.texts[i] for i in idx], max_length=config.max_length)
        only_last = {} if n == 0 or not accepts_logits_to_keep(lm) else {"logits_to_keep": 1}
        logits, entry = trunk.capture(batch.model_inputs(), {0, first}, **only_last)
        if n == 0 and not trunk.agrees(entry, logits):
            return None
        hidden.append(entry.hidden[first])
        entry.hidden.clear()
        entries.append(entry)
    parsed = [Site.parse(s) for s in sites]
    per_site: list[Fitted] = []
    current = first
    bar = tqdm(total=len(sites), desc="transport (block by block)", unit="site",
               disable=not progress)  # fmt: skip
    with torch.inference_mode():
        for i, (site, block) in enumerate(zip(parsed, blocks, strict=True)):
            while current < block:  # every site of `current` is fitted: move the texts on
                with installed(lm, _maps_so_far(lm, sites, widths, per_site, config)):
                    hidden = [trunk.run_block(e, current, h)
                              for e, h in zip(entries, hidden, strict=True)]  # fmt: skip
                current += 1
            x = torch.empty(len(data.texts), widths[i])
            with installed(lm, _maps_so_far(lm, sites, widths, per_site, config)):
                for idx, entry, h in zip(chunks, entries, hidden, strict=True):
                    with capture(lm.module(site.module), site.side) as seen:
                        trunk.run_block(entry, block, h)
                    x[idx] = pool_site(seen[0], entry.mask, "mean")
            per_site.append(_fit_site(x.numpy(), data, config))
            bar.update()
    bar.close()
    return _stack(per_site)


@register
class LinearAcT(Intervention):
    """linear-act: per-unit affine transport from toxic to non-toxic activations."""

    method = "linear-act"
    config_class = TransportConfig
    needs = ("data",)
    knobs = ("strength",)
    choices = ("mode", "support", "causal")
    unbounded = ("w",)  # cov / var, and a unit may barely vary

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: TransportConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        data = inputs.data
        assert data is not None  # the base checked `needs`
        data.require("Linear-AcT", per_class=2)
        names = resolve_sites(lm, config.sites, config.side)
        widths = [site_width(lm, s) for s in names]
        if not config.causal:
            acts = _collect(lm, data, names, config, progress)
            tensors = _stack([_fit_site(acts[site].numpy(), data, config) for site in names])
        else:
            tensors = (causal_by_replay(lm, data, names, widths, config, progress)
                       or causal_by_passes(lm, data, names, widths, config, progress))  # fmt: skip
        params = {"sites": names, "widths": widths, "mode": config.mode,
                  "strength": float(config.strength), "support": config.support,
                  "causal": config.causal}  # fmt: skip
        meta = cls.new_meta(lm, params, site_modules(names), data_hashes={"data": data.hash()},
                            stats={"n_texts": len(data), "n_toxic": data.n_toxic})  # fmt: skip
        return cls(tensors, meta)

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        self.param("support", str)
        n = unit_count(self, lm)
        return {name: (n,) for name in ("w", "b", "lo", "hi")}

    @property
    def strength(self) -> float:
        return float(self.params["strength"])

    def edits(self, lm: LanguageModel) -> list[Edit]:
        if self.strength == 0:
            return []
        return transport_edits(lm, self.params["sites"], self.params["widths"], self.tensors,
                               self.strength, self.params["support"])  # fmt: skip

    def describe(self, lm: LanguageModel) -> str:
        p = self.params
        how = "causal" if p["causal"] else "parallel"
        return (f"linear-act ({p['mode']}, support {p['support']}, {how}): "
                f"{len(self.tensors['w'])} units at {len(p['sites'])} sites")  # fmt: skip
