"""Deterministic, seeded splits and subsamples."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from ..errors import DataError


def split_indices(n: int, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Shuffle 0..n-1 with `seed` and cut it into parts of the given fractions (summing to <= 1)."""
    if any(f < 0 for f in fractions) or sum(fractions) > 1 + 1e-9:
        raise DataError(f"split fractions must be >= 0 and sum to at most 1, got {list(fractions)}")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum([0, *fractions]) * n).astype(int)
    return [np.sort(order[a:b]) for a, b in pairwise(bounds)]


def stratified_subsample(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` indices keeping the class ratio, sorted; all indices if size >= len(labels)."""
    n = len(labels)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked = []
    classes = np.unique(labels)
    for k, cls in enumerate(classes):
        members = np.flatnonzero(labels == cls)
        share = len(members) / n
        take = size - sum(len(p) for p in picked) if k == len(classes) - 1 else round(size * share)
        picked.append(rng.choice(members, size=min(max(take, 1), len(members)), replace=False))
    return np.sort(np.concatenate(picked))
