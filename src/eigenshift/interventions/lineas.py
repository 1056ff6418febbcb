"""LinEAS (Rodriguez et al., NeurIPS 2025; method.md section 4b): the per-unit affine maps of
Linear-AcT, T(a) = (1 - lam) a + lam (w a + b) at every site, but fitted jointly, end to end:
each step runs a batch of toxic texts through the model with every map applied, and the loss is
the one-dimensional Wasserstein-2 distance, per unit, between those texts' intervened
(mean-pooled) activations and the non-toxic texts' activations in the unmodified model, averaged
over units and sites. An earlier map is thus trained for what it does to every later site, which
the layer-by-layer fit cannot see. A sparse-group lasso (a proximal step on w - 1 and b, per unit
and per site) can drop units and whole layers. A few dozen texts per side suffice.

Read from apple/ml-lineas (its end-to-end estimator, identity-initialised maps, Adam with
betas (0.9, 0.9) and a cosine schedule, the proximal step after each update); ours trains fewer
steps at a larger rate, so a fit takes minutes on two CPU cores. The edit is Linear-AcT's (the
same `transport_edits`), so it bakes wherever Linear-AcT's does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Self

import numpy as np
import torch
from tqdm.auto import tqdm

from ..capture.activations import collect_activations, pool_site
from ..capture.hooks import Site, transform
from ..data import LabelledTexts
from ..models import LanguageModel, resolve_sites, site_modules, site_width
from ..models.language_model import accepts_logits_to_keep
from .base import FitInputs, Intervention, Shapes, register
from .configs import LineasConfig
from .edits import Edit
from .transport import transport_edits
from .units import split, unit_count

log = logging.getLogger(__name__)


@contextmanager
def frozen(lm: LanguageModel) -> Iterator[None]:
    """The model's own parameters take no gradient for the block (only the maps learn); their
    flags are put back on any exit."""
    params = list(lm.model.parameters())
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def quantiles(values: torch.Tensor, n: int) -> torch.Tensor:
    """Each column's quantiles at the levels (i + 0.5) / n: (n, columns)."""
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.quantile(values.double(), levels, dim=0).float()


def wasserstein(source: torch.Tensor, target_quantiles: torch.Tensor) -> torch.Tensor:
    """Mean over columns of the squared 1-D Wasserstein-2 distance between the source samples
    (rows) and a distribution given by its quantiles at the source's levels: sorting is the
    optimal plan in one dimension, and gradients pass through the sorted values."""
    return (source.sort(dim=0).values - target_quantiles).pow(2).mean()


def sparse_group_prox(x: torch.Tensor, widths: Sequence[int], l1: float, group: float) -> None:
    """In place: soft-threshold every entry by l1, then shrink each site's block towards zero by
    group * sqrt(its width) (zero when its norm is below that)."""
    if l1 > 0:
        x.copy_(x.sign() * (x.abs() - l1).clamp(min=0))
    if group > 0:
        for block in split(x, widths):
            norm = float(block.norm())
            block.mul_(max(0.0, 1 - group * math.sqrt(block.numel()) / norm) if norm else 0.0)


def fit_maps(
    lm: LanguageModel,
    toxic: Sequence[str],
    clean: Sequence[str],
    sites: list[str],
    widths: list[int],
    config: LineasConfig,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """(w, b, loss per step): the maps of every unit of `sites`, fitted end to end."""
    target = collect_activations(lm, clean, sites, pooling="mean", batch_size=config.batch_size,
                                 max_length=config.max_length, progress=False)  # fmt: skip
    goal = {s: quantiles(target[s], config.batch_size).to(lm.device) for s in sites}
    w = torch.ones(sum(widths), device=lm.device, requires_grad=True)
    b = torch.zeros(sum(widths), device=lm.device, requires_grad=True)
    optimizer = torch.optim.Adam([w, b], lr=config.learning_rate, betas=(0.9, 0.9))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.steps, eta_min=config.learning_rate * 1e-3)
    generator = torch.Generator().manual_seed(config.draw_seed)
    parsed = [Site.parse(s) for s in sites]
    offsets = np.cumsum([0, *widths]).tolist()
    pooled: dict[str, torch.Tensor] = {}
    mask: list[torch.Tensor] = []  # the current batch's attention mask, read by the hooks

    def mapper(i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        lo, hi = offsets[i], offsets[i + 1]

        def fn(a: torch.Tensor) -> torch.Tensor:
            mapped = (a.float() * w[lo:hi] + b[lo:hi]).to(a.dtype)
            pooled[sites[i]] = pool_site(mapped, mask[0], "mean")
            return mapped

        return fn

    losses: list[float] = []
    order: list[int] = []
    keep = {"logits_to_keep": 1} if accepts_logits_to_keep(lm) else {}
    bar = tqdm(range(config.steps), desc="LinEAS", unit="step", disable=not progress)
    with frozen(lm), ExitStack() as hooks:
        for i, site in enumerate(parsed):
            hooks.enter_context(transform(lm.module(site.module), mapper(i), site.side))
        for _ in bar:
            if len(order) < config.batch_size:  # a fresh permutation; drop the remainder
                order = torch.randperm(len(toxic), generator=generator).tolist()
            rows, order = order[: config.batch_size], order[config.batch_size :]
            batch = lm.encode([toxic[r] for r in rows], max_length=config.max_length)
            mask[:] = [batch.attention_mask]
            lm.model(**batch.model_inputs(), **keep)
            loss = torch.stack([wasserstein(pooled[s].to(lm.device), goal[s])
                                for s in sites]).mean()  # fmt: skip
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                tau = float(schedule.get_last_lr()[0])
                shifted = w - 1
                sparse_group_prox(shifted, widths, tau * config.l1, tau * config.group)
                w.copy_(shifted + 1)
                sparse_group_prox(b, widths, tau * config.l1, tau * config.group)
            schedule.step()
            losses.append(float(loss.detach()))
            pooled.clear()
            bar.set_postfix(loss=f"{losses[-1]:.4g}")
    return w.detach().cpu(), b.detach().cpu(), losses


@register
class LinEAS(Intervention):
    """lineas: per-unit affine maps at every site, fitted jointly end to end (LinEAS)."""

    method = "lineas"
    config_class = LineasConfig
    needs = ("data",)
    knobs = ("strength",)

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: LineasConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        data = inputs.data
        assert data is not None  # the base checked `needs`
        data.require("LinEAS", per_class=config.samples)
        toxic, clean = _draw(data, config.samples, config.draw_seed)
        names = resolve_sites(lm, config.sites, config.side)
        widths = [site_width(lm, s) for s in names]
        t0 = time.perf_counter()
        w, b, losses = fit_maps(lm, toxic, clean, names, widths, config, progress)
        active = ((w - 1).abs() > 1e-5) | (b.abs() > 1e-5)
        tail = max(1, len(losses) // 10)
        stats = {"n_texts": len(data), "toxic_texts": len(toxic), "clean_texts": len(clean),
                 "loss_first": float(np.mean(losses[:tail])),
                 "loss_last": float(np.mean(losses[-tail:])), "active_units": int(active.sum()),
                 "active_sites": sum(bool(a.any()) for a in split(active, widths)),
                 "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
        log.info("LinEAS: loss %.4g -> %.4g over %d steps, %d of %d units active",
                 stats["loss_first"], stats["loss_last"], config.steps, stats["active_units"],
                 len(w))  # fmt: skip
        params = {"sites": names, "widths": widths, "strength": float(config.strength),
                  "samples": config.samples, "steps": config.steps,
                  "learning_rate": config.learning_rate, "batch_size": config.batch_size,
                  "l1": config.l1, "group": config.group,
                  "max_length": config.max_length}  # fmt: skip
        meta = cls.new_meta(lm, params, site_modules(names), data_hashes={"data": data.hash()},
                            seed=config.draw_seed, stats=stats)  # fmt: skip
        return cls({"w": w.float(), "b": b.float()}, meta)

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        n = unit_count(self, lm)
        return {"w": (n,), "b": (n,)}

    @property
    def strength(self) -> float:
        return float(self.params["strength"])

    def edits(self, lm: LanguageModel) -> list[Edit]:
        if self.strength == 0:
            return []
        return transport_edits(lm, self.params["sites"], self.params["widths"], self.tensors,
                               self.strength, "all")  # Linear-AcT's edit, everywhere  # fmt: skip

    def describe(self, lm: LanguageModel) -> str:
        s = self.meta.stats
        return (f"lineas: {s.get('active_units', len(self.tensors['w']))} of "
                f"{len(self.tensors['w'])} units active at {s.get('active_sites', '?')} of "
                f"{len(self.params['sites'])} sites; Wasserstein loss {s.get('loss_first', 0):.3g}"
                f" -> {s.get('loss_last', 0):.3g}; strength {self.strength:g}")  # fmt: skip


def _draw(data: LabelledTexts, n: int, seed: int) -> tuple[list[str], list[str]]:
    """n toxic and n non-toxic texts, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    labels = data.labels.astype(bool)
    pick = [rng.choice(np.flatnonzero(side), size=n, replace=False) for side in (labels, ~labels)]
    return [data.texts[i] for i in pick[0]], [data.texts[i] for i in pick[1]]
