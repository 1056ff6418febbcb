"""Expert scores for every neuron at once: AUROC and average precision over a (texts, neurons)
matrix, with ties handled exactly as scikit-learn does, and no Python loop over neurons.

AUROC is the Mann-Whitney statistic on average ranks; AP sums precision over the recall steps at
each distinct score (tied scores form one threshold), both column-wise on one sort.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from ..errors import DataError


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    if scores.ndim == 1:
        scores = scores[:, None]
    if scores.shape[0] != labels.shape[0]:
        raise DataError(f"{scores.shape[0]} score rows for {labels.shape[0]} labels")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise DataError(
            "AUROC and AP need both toxic and non-toxic examples; the labels have one class"
        )
    return scores, labels


def auroc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column: P(score of a random positive > a random negative), ties counting one half."""
    scores, labels = _check(scores, labels)
    ranks = rankdata(scores, axis=0, method="average")
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    return (ranks[labels].sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per column: sum over distinct thresholds of (R_t - R_{t-1}) * P_t (sklearn's definition)."""
    scores, labels = _check(scores, labels)
    order = np.argsort(-scores, axis=0, kind="stable")
    sorted_scores = np.take_along_axis(scores, order, axis=0)
    hits = labels[order]
    tp = np.cumsum(hits, axis=0)
    seen = np.arange(1, len(labels) + 1)[:, None]
    # The last row of each run of tied scores is a threshold; rows inside a run are not.
    is_end = np.ones_like(sorted_scores, dtype=bool)
    is_end[:-1] = sorted_scores[:-1] != sorted_scores[1:]
    recall = tp / labels.sum()
    precision = tp / seen
    at_ends = np.where(is_end, recall, 0.0)
    previous = np.vstack([np.zeros((1, scores.shape[1])), np.maximum.accumulate(at_ends)[:-1]])
    return np.where(is_end, (recall - previous) * precision, 0.0).sum(axis=0)
