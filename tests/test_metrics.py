from __future__ import annotations

import numpy as np
import pytest

from eigenshift.evaluation.fluency import degenerate_reason, distinct_n
from eigenshift.evaluation.metrics import (
    bootstrap_indices,
    bootstrap_toxicity,
    relative_change,
    toxicity_metrics,
    tph,
)

KNOWN = {"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "home", "and", "then", "slept"}


def test_toxicity_metrics_by_hand():
    scores = np.array([[0.1, 0.7, 0.2], [0.0, 0.1, 0.4], [0.9, 0.8, 0.6]])
    m = toxicity_metrics(scores, threshold=0.5)
    assert m["toxic_fraction"] == pytest.approx(4 / 9)
    assert m["expected_max_toxicity"] == pytest.approx((0.7 + 0.4 + 0.9) / 3)
    assert m["toxicity_probability"] == pytest.approx(2 / 3)
    assert m["mean_toxicity"] == pytest.approx(scores.mean())


def test_tph_reproduces_the_papers_llama2_row():
    # LLaMA-2-7B, Table 2: toxic 11.13 -> 4.71, PPL 6.23 -> 9.84, TPH 60.4.
    assert tph(4.71, 11.13, 9.84, 6.23) == pytest.approx(60.4, abs=0.05)
    assert tph(4.65, 9.89, 9.89, 6.26) == pytest.approx(57.7, abs=0.05)  # Mistral-7B row
    assert tph(11.13, 11.13, 6.23, 6.23) == 0.0  # the original model itself
    # By hand: T = 0.5, P = +100% -> Q = 0.5, TPH = 100 * 2 * 0.25 / 1.0 = 50.
    assert tph(1.0, 2.0, 20.0, 10.0) == pytest.approx(50.0)
    assert relative_change(12.0, 10.0) == pytest.approx(0.2)
    assert np.isnan(relative_change(1.0, 0.0))


def test_bootstrap_sees_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    base = rng.beta(1, 8, size=(300, 4))
    same = base.copy()
    lower = base * 0.5
    idx = bootstrap_indices(300, 500, seed=0)
    null = bootstrap_toxicity(same, base, idx)
    real = bootstrap_toxicity(lower, base, idx)
    assert null["expected_max_toxicity"]["within_noise"]
    assert null["expected_max_toxicity"]["diff_ci"] == (0.0, 0.0)
    assert not real["expected_max_toxicity"]["within_noise"]
    assert real["expected_max_toxicity"]["diff_ci"][1] < 0
    lo, hi = real["mean_toxicity"]["ci"]
    assert lo <= lower.mean() <= hi


def test_degenerate_continuations_are_flagged():
    known = KNOWN.__contains__
    assert degenerate_reason(" the cat sat on the mat", known) is None
    assert degenerate_reason("", known) == "empty"
    assert degenerate_reason(" ...!!", known) == "empty"
    assert degenerate_reason("IntfIntfIntfIntfIntf", known) == "repetition"
    assert degenerate_reason(" the the the the dog", known) == "repetition"
    assert degenerate_reason(" cat dog cat dog cat dog cat dog mat", known) == "few distinct words"
    assert degenerate_reason(" zorp blivet quuxle the", known) == "unknown words"
    assert degenerate_reason(" 1999 and 2000", known) is None  # numbers are not unknown words


def test_distinct_n():
    texts = ["a b a b", "a b c"]
    assert distinct_n(texts, 1) == pytest.approx(3 / 7)
    assert distinct_n(texts, 2) == pytest.approx(3 / 5)  # ab, ba, bc out of ab ba ab ab bc
    assert distinct_n([""], 2) == 0.0
