"""Replaying a model block by block from one captured pass gives what whole passes give: the
perplexity of every method on shared stages, and Linear-AcT's one-pass causal fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import FAMILY_NAMES, make_lm
from test_baselines import DATA, _neurons

from eigenshift.capture.replay import Trunk
from eigenshift.evaluation.perplexity import (
    continuation_nll,
    edited_modules,
    perplexities,
    sequence_nll,
    shared_perplexities,
)
from eigenshift.interventions import (
    AurA,
    LinearAcT,
    MeanDifferenceSteering,
    ScaleUnembeddingInput,
)
from eigenshift.interventions.transport import causal_by_passes, causal_by_replay

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
    starts = {name: trunk.start_of(edited_modules(iv, lm)) for name, iv in _methods(lm)}
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


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_continuation_nll_with_shared_prompts_equals_whole_sequences(family):
    lm = make_lm(family)
    tok = lm.tokenizer
    prompts = [tok(t)["input_ids"] for t in ("the quick brown", "you are a stupid", "paris")]
    rows = [(0, [5, 6, 7]), (0, [8, 9]), (1, [10, 11, 12, 13]), (1, [14]), (2, [15, 16]), (2, [])]
    got = continuation_nll(lm, [prompts[p] for p, _ in rows], [c for _, c in rows],
                           batch_size=3)  # a prompt's rows split over two batches  # fmt: skip
    want = sequence_nll(lm, [prompts[p] + c for p, c in rows],
                        [len(prompts[p]) for p, _ in rows])  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.isnan(got[-1])


def test_no_shared_pass_when_nothing_would_share_it(monkeypatch):
    """Edits that all start at the first block, without the original: one pass each, no more."""
    lm = make_lm("llama")
    aura = _methods(lm)[3]
    calls = []
    monkeypatch.setattr(Trunk, "capture", lambda self, *a, **k: calls.append(1))
    (name, values, _), = shared_perplexities(lm, TEXTS, [aura], batch_size=2)
    with aura[1].applied(lm):
        np.testing.assert_allclose(values, perplexities(lm, TEXTS, batch_size=2), rtol=1e-6)
    assert calls == [] and name == "aura"
