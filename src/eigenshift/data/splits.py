"""Deterministic, seeded splits and subsamples."""

from __future__ import annotations

import numpy as np


def stratified_subsample(labels: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """`size` indices keeping the class ratio, sorted; all indices if size >= len(labels)."""
    n = len(labels)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    classes = np.unique(labels)
    for k, cls in enumerate(classes):
        members = np.flatnonzero(labels == cls)
        share = len(members) / n
        take = size - sum(len(p) for p in picked) if k == len(classes) - 1 else round(size * share)
        picked.append(rng.choice(members, size=min(max(take, 1), len(members)), replace=False))
    return np.sort(np.concatenate(picked))
