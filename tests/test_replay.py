"""Replaying a model block by block from one captured pass gives what whole passes give: the
perplexity of every method on shared stages, and Linear-AcT's one-pass causal fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAMILY_NAMES, make_lm
from test_baselines import DATA, _neurons

from eigenshift.evaluation.perplexity import perplexities, shared_perplexities
from eigenshift.interventions import (
    AurA,
    LinearAcT,
    MeanDifferenceSteering,
    ScaleUnembeddingInput,
)
from eigenshift.interventions.transport import causal_by_passes, causal_by_replay
from eigenshift.replay import Trunk

TEXTS = ["the quick brown fox jumps over", "paris", "you are a stupid idiot and nobody likes",
         "thank you very much for the help", "a b c d e f g h i j k l m n o p"]  # fmt: skip


def _methods(lm):
    head = ScaleUnembeddingInput.from_scale(lm, torch.linspace(0.2, 1.5, lm.arch.hidden_size))
    return [("original", None), ("eigen", head),
            ("steer", MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, strength=3.0,
                                                 progress=False)),
            ("aura", AurA.fit(lm, neurons=_neurons(lm))),
            ("act", LinearAcT.fit(lm, data=DATA, progress=False))]  # fmt: skip


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_shared_perplexities_equal_whole_passes(family):
    lm = make_lm(family)
    methods = _methods(lm)
    shared = {name: values for name, values, _ in
              shared_perplexities(lm, TEXTS, methods, batch_size=2)}  # fmt: skip
    for name, iv in methods:
        if iv is None:
            whole = perplexities(lm, TEXTS, batch_size=2)
        else:
            with iv.applied(lm):
                whole = perplexities(lm, TEXTS, batch_size=2)
        np.testing.assert_allclose(shared[name], whole, rtol=1e-6, err_msg=name)
        if iv is not None:  # every edit changes the numbers by more than the tolerance
            assert not np.allclose(shared[name], shared["original"], rtol=1e-5, equal_nan=True)


def test_replay_starts_where_the_first_edit_is():
    lm = make_lm("llama")
    trunk = Trunk(lm)
    starts = {name: trunk.start_of(iv) for name, iv in _methods(lm)}
    assert starts == {"original": trunk.head, "eigen": trunk.head, "steer": 1, "aura": 0,
                      "act": 0}  # fmt: skip


def test_a_forward_replay_cannot_reproduce_falls_back_to_whole_passes(caplog):
    """A family whose forward scales the logits after the head (as Cohere does) is caught by the
    first batch's check, and whole passes give the right numbers."""
    lm = make_lm("llama")
    forward = lm.model.forward

    def scaled(*args, **kwargs):
        out = forward(*args, **kwargs)
        out.logits = out.logits * 0.5
        return out

    lm.model.forward = scaled
    methods = _methods(lm)[:2]
    shared = {n: v for n, v, _ in shared_perplexities(lm, TEXTS, methods, batch_size=2)}
    with methods[1][1].applied(lm):
        whole = perplexities(lm, TEXTS, batch_size=2)
    np.testing.assert_allclose(shared["eigen"], whole, rtol=1e-5)
    assert "using whole passes" in caplog.text


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3_text"])
def test_linear_act_replayed_fit_equals_one_pass_per_site(family):
    lm = make_lm(family)
    fitted = LinearAcT.fit(lm, data=DATA, progress=False)
    config = LinearAcT.config_class()
    sites, widths = fitted.params["sites"], fitted.params["widths"]
    new = causal_by_replay(lm, DATA, sites, widths, config, progress=False)
    old = causal_by_passes(lm, DATA, sites, widths, config, progress=False)
    assert new is not None  # this family is replayed, not fallen back from
    for name in ("w", "b", "lo", "hi"):
        torch.testing.assert_close(new[name], old[name], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(fitted.tensors[name], new[name])
    parallel = LinearAcT.fit(lm, data=DATA, causal=False, progress=False)
    assert not torch.allclose(parallel.tensors["w"], new["w"], rtol=1e-4)  # causality shows
