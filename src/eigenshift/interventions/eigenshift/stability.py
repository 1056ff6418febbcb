"""How much of EigenShift's selection is signal: fits on two disjoint halves of the evidence, and
a bootstrap of each direction's score, both resampling whole texts (states of one text are not
independent).

The two halves' selections are compared by the mean squared cosine of the principal angles
between the selected subspaces (1: the same subspace; k/d: what two random k-subsets of an
orthonormal basis share on average) and by the overlap of the selected indices. With the columns
of one orthonormal V both figures coincide; they part when the directions are not orthonormal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# The clean states' weights for a subset of the evidence: (toxic mask, clean mask) -> weights over
# the selected clean states (summing to 1), e.g. position-matched to the subset's toxic states.
Weigh = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Projections:
    """Evidence projected on the directions: rows are states, columns directions."""

    toxic: torch.Tensor  # (n, d) float64
    toxic_groups: torch.Tensor  # (n,) the text of each state
    clean: torch.Tensor  # (m, d) float64
    clean_groups: torch.Tensor
    weigh: Weigh


def direction_stats(
    toxic: torch.Tensor, u: torch.Tensor, clean: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted delta (toxic mean - clean mean) and pooled spread per direction; `u` and `w` are
    (..., n) and (..., m) weights summing to 1, so a batch of resamples is one product."""
    mean_t, mean_c = u @ toxic, w @ clean
    var_t = u @ toxic**2 - mean_t**2
    var_c = w @ clean**2 - mean_c**2
    return mean_t - mean_c, ((var_t.clamp(min=0) + var_c.clamp(min=0)) / 2).sqrt()


def selection_score(delta: torch.Tensor, spread: torch.Tensor, kind: str) -> torch.Tensor:
    """Sign-free: flipping v_i flips delta_i, not its magnitude (method.md section 7)."""
    if kind == "standardized":
        return (delta / spread.clamp(min=1e-12)).abs()
    return delta.abs()


def top(score: torch.Tensor, k: int) -> torch.Tensor:
    return torch.argsort(score, descending=True)[:k]


def subspace_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared cosine of the principal angles between the column spans of a and b."""
    if a.shape[1] == 0:
        return 1.0
    qa, qb = torch.linalg.qr(a)[0], torch.linalg.qr(b)[0]
    cos = torch.linalg.svdvals(qa.T @ qb)
    return float((cos**2).sum() / a.shape[1])


def _uniform(mask: torch.Tensor) -> torch.Tensor:
    n = int(mask.sum())
    return torch.full((n,), 1.0 / max(n, 1), dtype=torch.float64)


def halves(
    p: Projections, v: torch.Tensor, kind: str, ks: Sequence[int], seed: int
) -> dict[str, Any]:
    """Fit each of two seeded disjoint halves of the texts; compare their selections per k."""
    groups = torch.unique(torch.cat([p.toxic_groups, p.clean_groups]))
    perm = torch.from_numpy(np.random.default_rng(seed).permutation(len(groups)))
    first = groups[perm[: len(groups) // 2]]
    scores = []
    for side in (True, False):
        t_mask = torch.isin(p.toxic_groups, first) == side
        c_mask = torch.isin(p.clean_groups, first) == side
        if not t_mask.any() or not c_mask.any():
            return {"error": "too few texts to split in two"}
        delta, spread = direction_stats(p.toxic[t_mask], _uniform(t_mask), p.clean[c_mask],
                                        p.weigh(t_mask, c_mask))  # fmt: skip
        scores.append(selection_score(delta, spread, kind))
    d = p.toxic.shape[1]
    rows = []
    for k in ks:
        a, b = top(scores[0], k), top(scores[1], k)
        shared = len(set(a.tolist()) & set(b.tolist()))
        rows.append({"k": k, "subspace_similarity": round(subspace_similarity(v[:, a], v[:, b]), 4),
                     "index_overlap": round(shared / k, 4) if k else 1.0,
                     "chance": round(k / d, 4)})  # fmt: skip
    rank_corr = float(np.corrcoef(scores[0].argsort().argsort().numpy(),
                                  scores[1].argsort().argsort().numpy())[0, 1])  # fmt: skip
    return {"per_k": rows, "score_rank_correlation": round(rank_corr, 4)}


def bootstrap(
    p: Projections, kind: str, selected: torch.Tensor, k: int, resamples: int, seed: int,
    chunk: int = 25,
) -> dict[str, Any]:  # fmt: skip
    """Resample texts with replacement; each selected direction's score interval (95%) and how
    often it is among the top k. Clean weights keep the full evidence's matching, scaled by each
    text's multiplicity."""
    all_groups = torch.unique(torch.cat([p.toxic_groups, p.clean_groups]))
    t_idx = torch.searchsorted(all_groups, p.toxic_groups)
    c_idx = torch.searchsorted(all_groups, p.clean_groups)
    base_w = p.weigh(torch.ones(len(p.toxic_groups), dtype=torch.bool),
                     torch.ones(len(p.clean_groups), dtype=torch.bool))  # fmt: skip
    rng = np.random.default_rng(seed)
    picked, in_top = [], torch.zeros(len(selected), dtype=torch.float64)
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        draws = rng.multinomial(len(all_groups), np.full(len(all_groups), 1 / len(all_groups)), n)
        m = torch.from_numpy(draws).double()
        u, w = m[:, t_idx], m[:, c_idx] * base_w
        u = u / u.sum(1, keepdim=True).clamp(min=1e-300)
        w = w / w.sum(1, keepdim=True).clamp(min=1e-300)
        delta, spread = direction_stats(p.toxic, u, p.clean, w)
        score = selection_score(delta, spread, kind)
        picked.append(score[:, selected])
        kth = score.topk(k, dim=1).values[:, -1:] if k else score[:, :1]
        in_top += (score[:, selected] >= kth).double().sum(0)
    values = torch.cat(picked).numpy() if picked else np.zeros((0, len(selected)))
    return {
        "resamples": resamples,
        "score_low": np.percentile(values, 2.5, axis=0).round(4).tolist() if resamples else [],
        "score_high": np.percentile(values, 97.5, axis=0).round(4).tolist() if resamples else [],
        "selected_share": (in_top / max(resamples, 1)).round(decimals=3).tolist(),
    }
