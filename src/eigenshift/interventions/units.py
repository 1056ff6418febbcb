"""Per-unit affine edits a -> scale * a + shift at named sites, shared by the neuron baselines
(AurA, Det-0, Damp: shift 0) and activation transport (Linear-AcT, Mean-AcT).

Applied by a hook at every token position; as an `Affine` with a per-unit scale and shift it
folds exactly into the site's linear layer (the base does that for every method alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..capture.hooks import Site
from ..core.errors import ArtifactError, InputError
from ..models import LanguageModel
from ..models.sites import check_sites
from .base import Intervention
from .edits import Affine, Edit


def unit_count(intervention: Intervention, lm: LanguageModel | None) -> int:
    """Units over all sites of a per-unit artifact, its site list checked (against `lm`'s sites
    when given: scores or maps from another model would edit the wrong units)."""
    sites, widths = intervention.param("sites", list), intervention.param("widths", list)
    if not (len(sites) == len(widths) and all(isinstance(s, str) for s in sites)
            and all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)):
        raise ArtifactError(f"this '{intervention.method}' artifact's sites and widths do not "
                            "match: fit it again")  # fmt: skip
    if lm is not None:
        try:
            check_sites(lm, sites, widths)
        except InputError as exc:
            raise ArtifactError(str(exc)) from None
    return sum(widths)


def split(values: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    return list(torch.split(values, list(widths)))


def unit_edits(
    lm: LanguageModel,
    sites: Sequence[str],
    widths: Sequence[int],
    scale: torch.Tensor,
    shift: torch.Tensor | None = None,
    support: tuple[torch.Tensor, torch.Tensor] | None = None,
    why_not: str = "",
) -> list[Edit]:
    """One edit per site that changes anything; untouched sites get none (no cost). With
    `support` (per-unit low and high), a unit is edited only where its value lies inside that
    range, which no weight can express: such edits carry `why_not` instead of an affine form."""
    none: list[torch.Tensor | None] = [None] * len(sites)
    shifts = split(shift, widths) if shift is not None else none
    lows, highs = (none, none) if support is None else (split(x, widths) for x in support)
    edits = []
    for site, s, t, lo, hi in zip(sites, split(scale, widths), shifts, lows, highs, strict=True):
        if torch.all(s == 1) and (t is None or torch.all(t == 0)):
            continue
        where = lm.placement(Site.parse(site).module)  # each block's own device and dtype
        ds, dt, dlo, dhi = (None if x is None else x.to(*where) for x in (s, t, lo, hi))

        def fn(a: torch.Tensor, s=ds, t=dt, lo=dlo, hi=dhi) -> torch.Tensor:
            edited = a * s if t is None else a * s + t
            return edited if lo is None else torch.where((a >= lo) & (a <= hi), edited, a)

        affine = Affine(scale=s, shift=t) if support is None else None
        edits.append(Edit(Site.parse(site), fn, affine, why_not=why_not))
    return edits
