from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_lm
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from eigenshift.capture.activations import collect_activations
from eigenshift.core.errors import DataError, InputError
from eigenshift.data import LabelledTexts
from eigenshift.locate import (
    LayerConfig,
    kmeans_expertise,
    locate_layers,
    write_layer_report,
)
from eigenshift.locate.layers import fold_splits, probe_and_units
from eigenshift.locate.stats import length_bins

TOXIC = ["you stupid idiot", "what an idiot you are", "shut up you idiot", "idiot idiot"]
CLEAN = ["the quick brown fox", "paris is the capital", "thank you very much", "a model of it"]


def _blobs(seed: int, n: int = 300, d: int = 12, shift: float = 1.5):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)) + shift * y[:, None] * rng.normal(size=d)
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("standardize", [False, True])
def test_kmeans_expertise_matches_scikit_learn_with_the_better_matching(seed, standardize):
    x, y = _blobs(seed, shift=0.6)  # overlapping blobs: neither matching is perfect
    space = StandardScaler().fit_transform(x) if standardize else x
    clusters = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(space)
    expected = max(roc_auc_score(y, clusters), roc_auc_score(y, 1 - clusters))
    r = kmeans_expertise(x, y, seed=seed, standardize=standardize)
    got = r["kmeans_auroc"]
    assert abs(got - expected) < 1e-12 and 0.5 <= got < 1.0
    assert abs(r["silhouette"] - silhouette_score(space, clusters)) < 1e-12
    flipped = kmeans_expertise(x, 1 - y, seed=seed, standardize=standardize)["kmeans_auroc"]
    assert abs(flipped - got) < 1e-12  # cluster names carry no meaning


def test_kmeans_of_identical_points_is_chance_without_a_silhouette():
    r = kmeans_expertise(np.ones((10, 3)), np.array([0, 1] * 5))
    assert r["kmeans_auroc"] == 0.5 and np.isnan(r["silhouette"])


def test_a_split_by_length_is_seen_for_what_it_is():
    rng = np.random.default_rng(0)
    n = 400
    lengths = rng.integers(5, 100, n).astype(float)
    y = (rng.random(n) < 0.2 + 0.6 * (lengths > 50)).astype(int)  # toxic texts run longer
    x = rng.normal(size=(n, 4))
    x[:, 0] += 6.0 * (lengths > 50)  # the representation splits cleanly on length alone
    strata = length_bins(lengths, 8)
    r = kmeans_expertise(x, y, lengths=lengths, strata=strata)
    assert r["kmeans_auroc"] > 0.75  # reads as expertise...
    assert r["kmeans_cluster_length_auroc"] > 0.95  # ...but the clusters are long vs short
    assert abs(r["kmeans_auroc_length_matched"] - 0.5) < 0.1  # and carry nothing within a bin
    splits = fold_splits(y, 4, seed=0)
    p = probe_and_units(x, y, splits, strata=strata)
    assert p["probe_auroc"] > 0.75 and abs(p["probe_auroc_length_matched"] - 0.5) < 0.12


def test_probe_and_units_on_known_signal():
    rng = np.random.default_rng(0)
    n, d = 600, 40
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d))
    x[:, 7] -= 2.0 * y  # one strong unit, firing *less* on toxic text
    splits = fold_splits(y, 5, seed=0)
    r = probe_and_units(x, y, splits)
    assert r["best_unit_per_fold"] == [7] * 5  # picked sign-free on every training fold
    assert r["best_unit_auroc"] > 0.9 and abs(r["mean_unit_auroc_raw"] - 0.5) < 0.03
    assert r["mean_unit_auroc"] >= r["mean_unit_auroc_raw"]  # oriented: unit 7 counts as > 0.5
    # the probe is a standardised logistic regression scored on the held-out folds
    expected = []
    for train, test in splits:
        scaler = StandardScaler().fit(x[train])
        clf = LogisticRegression(solver="newton-cholesky").fit(scaler.transform(x[train]), y[train])
        expected.append(roc_auc_score(y[test], clf.decision_function(scaler.transform(x[test]))))
    assert abs(r["probe_auroc"] - np.mean(expected)) < 1e-9

    # a signal spread thinly over many units: the probe sees it, no single unit does
    w = rng.normal(size=d)
    x2 = rng.normal(size=(n, d)) + 0.35 * y[:, None] * np.sign(w)
    r2 = probe_and_units(x2, y, splits)
    assert r2["probe_auroc"] > 0.9 and r2["best_unit_auroc"] < 0.7  # d' 2.2 vs 0.35


def _data(repeat: int = 3) -> LabelledTexts:
    texts = (TOXIC + CLEAN) * repeat
    labels = np.array(([1] * len(TOXIC) + [0] * len(CLEAN)) * repeat)
    return LabelledTexts(texts, labels, "synthetic")


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_locate_layers_scores_every_block_and_reproduces(family, tmp_path):
    lm = make_lm(family)
    config = LayerConfig(folds=3, seed=4, length_bins=2)
    scores = locate_layers(lm, _data(), config, progress=False)
    assert [r["layer"] for r in scores.rows] == list(range(lm.arch.num_layers))
    assert scores.column("relative_depth")[-1] == 1.0
    assert all(r["width"] == lm.arch.hidden_size for r in scores.rows)
    # each layer's k-means figure is that of its own block's mean-pooled states, under the seed
    acts = collect_activations(lm, _data().texts, [r["site"] for r in scores.rows],
                               pooling="mean", progress=False)  # fmt: skip
    for r in scores.rows:
        reference = kmeans_expertise(acts[r["site"]].numpy(), _data().labels, seed=4)
        assert r["kmeans_auroc"] == pytest.approx(reference["kmeans_auroc"], abs=1e-9)
        assert r["silhouette"] == pytest.approx(reference["silhouette"], abs=1e-6)
    assert 0.0 <= scores.meta["length_auroc"] <= 1.0
    again = locate_layers(lm, _data(), config, progress=False)
    assert again.rows == scores.rows  # same seed, same clusters, folds and probes

    mlp = locate_layers(lm, _data(), LayerConfig(representation="mlp", pooling="last", folds=3),
                        progress=False)  # fmt: skip
    assert all(r["width"] == lm.arch.mlp_width for r in mlp.rows)

    scores.save(tmp_path)
    assert json.loads((tmp_path / "layers.json").read_text())["layers"] == scores.rows
    report = write_layer_report(scores, tmp_path).read_text()
    assert "| 0 |" in report and (tmp_path / "layers.png").stat().st_size > 0
    assert "probe, length-matched" in report and "Token count predicts the k-means" in report


def test_locate_layers_bad_input():
    lm = make_lm("llama")
    with pytest.raises(InputError, match="at least 8 labelled texts"):
        locate_layers(lm, LabelledTexts(TOXIC, np.ones(4, dtype=int), "x"), progress=False)
    with pytest.raises(DataError, match="one class"):
        locate_layers(lm, LabelledTexts(TOXIC * 3, np.ones(12, dtype=int), "x"),
                      LayerConfig(folds=2), progress=False)  # fmt: skip
    with pytest.raises(InputError, match="5-fold cross-validation needs at least 5"):
        locate_layers(lm, _data(1), progress=False)
    with pytest.raises(InputError, match="representation must be one of"):
        LayerConfig(representation="attention")
    with pytest.raises(InputError, match="folds must be >= 2"):
        LayerConfig(folds=1)
