"""Per-unit affine edits at named sites, a -> scale * a + shift, shared by the neuron baselines
(AurA, Det-0, Damp: shift 0) and activation transport (Linear-AcT, Mean-AcT).

Applied by a hook at every token position. Baking folds the edit into the module the site
belongs to, which is exact for a linear map: on its input side, W' = W diag(scale) and
b' = b + W shift; on its output side, W' = diag(scale) W and b' = scale * b + shift. A shift needs
a bias to land in; a module without one keeps the edit hook-only, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from ..errors import InputError, NotBakeableError
from ..hooks import Site, transform
from ..models import LanguageModel
from ..models.architecture import is_conv1d, linear_width


def site_width(lm: LanguageModel, site: str) -> int:
    """Units at a site, read from the module's weight (no forward pass needed)."""
    parsed = Site.parse(site)
    width = linear_width(lm.module(parsed.module), parsed.side)
    if width is None:
        raise InputError(f"site '{site}' is not a linear layer; per-unit edits need one")
    return width


def check_sites(lm: LanguageModel, sites: Sequence[str], widths: Sequence[int]) -> None:
    """Scores computed on another model (or other sites) would edit the wrong units."""
    for site, width in zip(sites, widths, strict=True):
        try:
            actual = site_width(lm, site)
        except (AttributeError, KeyError) as exc:
            raise InputError(f"site '{site}' does not exist in '{lm.name}'") from exc
        if actual != width:
            raise InputError(f"site '{site}' has {actual} units in '{lm.name}' but the scores "
                             f"have {width}: they were computed on another model")  # fmt: skip


def split(values: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    return list(torch.split(values, list(widths)))


def site_modules(sites: Sequence[str]) -> list[str]:
    """The modules behind the sites: what an edit's artifact depends on."""
    return sorted({Site.parse(s).module for s in sites})


def unit_hooks(
    lm: LanguageModel,
    sites: Sequence[str],
    widths: Sequence[int],
    scale: torch.Tensor,
    shift: torch.Tensor | None = None,
    support: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> list[AbstractContextManager[Any]]:
    """One hook per site that edits anything; untouched sites get none (no cost). With `support`
    (per-unit low and high), a unit is edited only where its value lies inside that range."""
    none = [None] * len(sites)
    shifts = split(shift, widths) if shift is not None else none
    lows, highs = (none, none) if support is None else (split(x, widths) for x in support)
    hooks = []
    for site, s, t, lo, hi in zip(sites, split(scale, widths), shifts, lows, highs, strict=True):
        if torch.all(s == 1) and (t is None or torch.all(t == 0)):
            continue
        parsed = Site.parse(site)
        s, t, lo, hi = (None if x is None else x.to(lm.device, lm.dtype) for x in (s, t, lo, hi))

        def edit(a: torch.Tensor, s=s, t=t, lo=lo, hi=hi) -> torch.Tensor:
            edited = a * s if t is None else a * s + t
            return edited if lo is None else torch.where((a >= lo) & (a <= hi), edited, a)

        hooks.append(transform(lm.module(parsed.module), edit, side=parsed.side))
    return hooks


def fold_all(
    lm: LanguageModel,
    sites: Sequence[str],
    widths: Sequence[int],
    scale: torch.Tensor,
    shift: torch.Tensor | None = None,
) -> None:
    """Fold every site's edit, after checking all of them: a refusal leaves no site half-baked."""
    shifts = split(shift, widths) if shift is not None else [None] * len(sites)
    edits = [(site, s, t) for site, s, t in zip(sites, split(scale, widths), shifts, strict=True)
             if not torch.all(s == 1) or (t is not None and torch.any(t != 0))]  # fmt: skip
    for site, _, t in edits:
        _check_foldable(lm, site, t)
    for site, s, t in edits:
        _fold(lm, site, s, t)


def _check_foldable(lm: LanguageModel, site: str, shift: torch.Tensor | None) -> None:
    parsed = Site.parse(site)
    module = lm.module(parsed.module)
    if not (isinstance(module, nn.Linear) or is_conv1d(module)):
        raise NotBakeableError(f"'{site}' is not a linear layer: apply the edit with a hook")
    if shift is not None and bool(torch.any(shift != 0)) and getattr(module, "bias", None) is None:
        raise NotBakeableError(
            f"the edit at '{site}' adds a constant, and '{parsed.module}' has no bias to fold it "
            "into: apply it with a hook (`with intervention.applied(model):`)"
        )


def _fold(lm: LanguageModel, site: str, scale: torch.Tensor, shift: torch.Tensor | None) -> None:
    """a -> scale * a + shift at `site`, folded into its module's weights in float64."""
    parsed = Site.parse(site)
    if parsed.module == lm.arch.unembedding:
        lm.untie_unembedding()  # a tied weight is never edited in place
    module = lm.module(parsed.module)
    weight = module.weight
    bias = getattr(module, "bias", None)
    has_shift = shift is not None and bool(torch.any(shift != 0))
    w = weight.detach().double()
    s = scale.to(weight.device, torch.float64)
    t = None if shift is None else shift.to(weight.device, torch.float64)
    # Work in (out, in) orientation; Conv1D stores the transpose.
    w_oi = w.T if is_conv1d(module) else w
    with torch.no_grad():
        if parsed.side == "input":
            new_w = w_oi * s[None, :]
            new_b = None if bias is None else bias.double() + (w_oi @ t if has_shift else 0.0)
        else:
            new_w = w_oi * s[:, None]
            new_b = None if bias is None else bias.double() * s + (t if has_shift else 0.0)
        weight.copy_((new_w.T if is_conv1d(module) else new_w).to(weight.dtype))
        if bias is not None and new_b is not None:
            bias.copy_(new_b.to(bias.dtype))
