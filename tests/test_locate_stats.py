from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from eigenshift.core.errors import DataError
from eigenshift.locate import auroc, average_precision


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_ap_match_scikit_learn(ties, seed):
    rng = np.random.default_rng(seed)
    n, m = 257, 40
    labels = rng.random(n) < 0.3
    scores = rng.integers(0, 5, size=(n, m)).astype(float) if ties else rng.normal(size=(n, m))
    scores[:, 0] = 1.0  # a constant neuron: AUROC 0.5, AP = base rate
    scores[:, 1] = labels + 0.0  # a perfect one
    expected_auc = [roc_auc_score(labels, scores[:, j]) for j in range(m)]
    expected_ap = [average_precision_score(labels, scores[:, j]) for j in range(m)]
    np.testing.assert_allclose(auroc(scores, labels), expected_auc, atol=1e-9, rtol=0)
    np.testing.assert_allclose(average_precision(scores, labels), expected_ap, atol=1e-9, rtol=0)
    assert auroc(scores, labels)[1] == 1.0 and auroc(scores, labels)[0] == 0.5


def test_one_dimensional_scores_and_one_class_labels():
    labels = np.array([0, 1, 0, 1])
    assert auroc(np.array([0.1, 0.9, 0.2, 0.8]), labels).tolist() == [1.0]
    with pytest.raises(DataError, match="one class"):
        auroc(np.ones((3, 2)), np.array([1, 1, 1]))
    with pytest.raises(DataError, match="3 score rows for 4 labels"):
        average_precision(np.ones((3, 2)), labels)


def test_length_matched_auroc_is_the_pair_weighted_within_bin_auroc():
    from eigenshift.locate.stats import length_bins, stratified_auroc

    rng = np.random.default_rng(5)
    n = 600
    lengths = rng.integers(5, 120, n).astype(float)
    labels = rng.random(n) < 0.2 + 0.5 * (lengths > 60)  # toxic texts run longer
    content = rng.normal(size=n) + 0.8 * labels
    scores = np.stack([lengths + rng.random(n), content], axis=1)  # a length unit, a content unit
    strata = length_bins(lengths, 10)
    assert len(np.unique(strata)) == 10
    for s in np.unique(strata):  # each bin spans a length range no other bin enters
        inside, outside = lengths[strata == s], lengths[strata != s]
        assert not ((outside >= inside.min()) & (outside <= inside.max())).any()
    expected, weight = np.zeros(2), 0
    for s in np.unique(strata):
        rows = strata == s
        pairs = labels[rows].sum() * (~labels[rows]).sum()
        if pairs:
            per_unit = [roc_auc_score(labels[rows], scores[rows, j]) for j in (0, 1)]
            expected += pairs * np.array(per_unit)
            weight += pairs
    got = stratified_auroc(scores, labels, strata)
    np.testing.assert_allclose(got, expected / weight, atol=1e-12, rtol=0)
    plain = auroc(scores, labels)
    assert plain[0] > 0.75 and abs(got[0] - 0.5) < 0.1  # length alone: near chance within bins
    assert abs(got[1] - plain[1]) < 0.05  # content survives the control
    with pytest.raises(DataError, match="fewer bins"):
        stratified_auroc(scores, labels, np.where(labels, 0, 1))
