"""Expert scores for every neuron at once: AUROC and average precision over a (texts, neurons)
matrix, with ties handled exactly as scikit-learn does, and no Python loop over neurons.

Both come from one sort per neuron, done on a neurons-major copy so each sort runs over
contiguous memory, in the activations' own dtype (float32 sorts twice as fast as float64, and
ties stay ties). AUROC is the Mann-Whitney statistic on average ranks; AP sums precision over the
recall steps at each distinct score (tied scores form one threshold).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..core.errors import DataError


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.shape[0] != labels.shape[0]:
        raise DataError(f"{scores.shape[0]} score rows for {labels.shape[0]} labels")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise DataError("AUROC and AP need toxic and non-toxic examples; the labels have one class")
    return scores, labels


def _block(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AUROC, AP) of each row of x (neurons, texts)."""
    n = x.shape[1]
    n_pos = int(labels.sum())
    n_neg = n - n_pos
    order = np.argsort(-x, axis=1)  # descending; order inside a tie run does not matter
    s = np.take_along_axis(x, order, axis=1)
    hits = labels[order]
    # Runs of tied scores: a threshold sits at each run's last element.
    is_end = np.ones_like(s, dtype=bool)
    is_end[:, :-1] = s[:, :-1] != s[:, 1:]
    is_start = np.ones_like(s, dtype=bool)
    is_start[:, 1:] = is_end[:, :-1]
    # AUROC: average descending rank of each run, turned into ascending ranks.
    idx = np.broadcast_to(np.arange(n, dtype=np.int32), s.shape)
    first = np.maximum.accumulate(np.where(is_start, idx, 0), axis=1)
    last = np.minimum.accumulate(np.where(is_end, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]
    rank_sum = ((n - (first + last) / 2.0) * hits).sum(axis=1)
    auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    # AP: sum over thresholds of (recall step) x precision.
    tp = np.cumsum(hits, axis=1, dtype=np.int32)
    recall = tp / n_pos
    at_ends = np.where(is_end, recall, 0.0)
    previous = np.zeros_like(at_ends)
    previous[:, 1:] = np.maximum.accumulate(at_ends, axis=1)[:, :-1]
    precision = tp / np.arange(1, n + 1)
    ap = np.where(is_end, (recall - previous) * precision, 0.0).sum(axis=1)
    return auc, ap


def expert_scores(
    scores: np.ndarray, labels: np.ndarray, block: int = 2048, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(AUROC, AP) per column of `scores` (texts x neurons): blocks of neurons, sorted
    neurons-major, spread over threads (numpy releases the GIL in sorts and ufuncs)."""
    scores, labels = _check(scores, labels)
    m = scores.shape[1]
    starts = range(0, m, block)

    def run(start: int) -> tuple[np.ndarray, np.ndarray]:
        return _block(np.ascontiguousarray(scores[:, start : start + block].T), labels)

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        parts = list(pool.map(run, starts))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column: P(score of a random positive > a random negative), ties counting one half."""
    return expert_scores(scores, labels)[0]


def average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column: sum over distinct thresholds of (R_t - R_{t-1}) * P_t (sklearn's definition)."""
    return expert_scores(scores, labels)[1]


def length_bins(lengths: np.ndarray, bins: int) -> np.ndarray:
    """Quantile bins of text length (ties kept together): the strata of a length-matched AUROC."""
    edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, lengths, side="right")


def stratified_auroc(scores: np.ndarray, labels: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Per column: P(a toxic text outranks a non-toxic one *of the same stratum*).

    Each stratum's AUROC weighted by its number of (toxic, non-toxic) pairs; strata with one class
    hold no pairs and drop out. With length strata, a unit that only tracks length scores ~0.5.
    """
    scores, labels = _check(scores, labels)
    strata = np.asarray(strata)
    total, weight = np.zeros(scores.shape[1]), 0
    for s in np.unique(strata):
        rows = strata == s
        pos = int(labels[rows].sum())
        pairs = pos * (int(rows.sum()) - pos)
        if pairs:
            total += pairs * auroc(scores[rows], labels[rows])
            weight += pairs
    if not weight:
        raise DataError("no stratum holds both toxic and non-toxic texts; use fewer bins")
    return total / weight
