from __future__ import annotations

import numpy as np
import pytest
from conftest import make_lm

from eigenshift.core.errors import InputError
from eigenshift.data import LabelledTexts
from eigenshift.locate import NeuronConfig, NeuronScores, locate_neurons, write_neuron_report

TOXIC = ["you stupid idiot", "what an idiot you are", "shut up you idiot", "idiot idiot"]
CLEAN = ["the quick brown fox", "paris is the capital", "thank you very much", "a model of it"]


def _data(repeat: int = 3) -> LabelledTexts:
    texts = (TOXIC + CLEAN) * repeat
    labels = np.array(([1] * len(TOXIC) + [0] * len(CLEAN)) * repeat)
    return LabelledTexts(texts, labels, "synthetic")


def test_scores_every_mlp_unit_and_measures_stability(tmp_path):
    lm = make_lm("llama")
    config = NeuronConfig(bootstrap=5, seed=3, length_bins=2)
    scores = locate_neurons(lm, _data(), config, data2=_data(2), progress=False)
    assert scores.auroc.shape == (lm.arch.num_layers * lm.arch.mlp_width,) == scores.ap.shape
    assert scores.widths == [64, 64] and scores.site_of(70) == (scores.sites[1], 6)
    assert scores.auroc.max() > 0.9  # 'idiot' tokens drive some unit hard on this data
    t = scores.meta["thresholds"]["0.55"]
    assert 0 <= t["bootstrap_jaccard_min"] <= t["bootstrap_jaccard_mean"] <= 1
    assert scores.meta["data2"]["auroc_correlation"] > 0.9  # the same texts, repeated
    again = locate_neurons(lm, _data(), config, progress=False)
    assert np.array_equal(again.auroc, scores.auroc)
    assert again.meta["thresholds"] == scores.meta["thresholds"]  # same seed, same expert sets

    scores.save(tmp_path)
    loaded = NeuronScores.load(tmp_path)
    assert np.array_equal(loaded.auroc, scores.auroc) and loaded.sites == scores.sites
    assert scores.auroc_length_matched is not None and 0 <= scores.meta["length_auroc"] <= 1
    assert np.array_equal(loaded.auroc_length_matched, scores.auroc_length_matched)
    report = write_neuron_report(scores, tmp_path).read_text()
    assert "Length-matched (2 token-count bins" in report
    assert "| 1 |" in report and (tmp_path / "auroc_histogram.png").exists()


def test_site_patterns_and_bad_input():
    lm = make_lm("gpt2")
    scores = locate_neurons(lm, _data(), NeuronConfig(sites="transformer.h.*.mlp.c_fc",
                                                       side="output", bootstrap=0),
                            progress=False)  # fmt: skip
    assert scores.sites == ["transformer.h.0.mlp.c_fc", "transformer.h.1.mlp.c_fc"]
    with pytest.raises(InputError, match="matches no module"):
        locate_neurons(lm, _data(), NeuronConfig(sites="nothing.*"), progress=False)
    with pytest.raises(InputError, match="at least"):
        locate_neurons(lm, LabelledTexts(TOXIC[:2] + CLEAN[:2], np.array([1, 1, 0, 0]), "x"),
                       progress=False)  # fmt: skip
    with pytest.raises(InputError, match=r"no neurons\.json"):
        NeuronScores.load(".")
