from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import transformers as tf
from conftest import fit_es, make_lm

from eigenshift.core.errors import ArtifactError, InputError, NotBakeableError
from eigenshift.engines.generation import SamplingConfig
from eigenshift.export.hf import export_model
from eigenshift.interventions import EigenShift, EigenShiftConfig, load_intervention
from eigenshift.interventions.eigenshift.decomposition import right_singular, right_singular_svd
from eigenshift.interventions.eigenshift.method import clean_weights
from eigenshift.interventions.eigenshift.tokens import directions
from eigenshift.models import load_model
from eigenshift.report.explain import write_explanation


class LetterScorer:
    """Calls a continuation toxic when it contains the letter 'o': a scorer with a known answer."""

    name = "letter-o"

    def score(self, texts):
        return np.array([0.9 if "o" in t else 0.05 for t in texts])


SMALL = dict(evidence="generated", fit_prompts=24, min_toxic=3, k=3, alpha=0.2, recipe="paper",
             sampling=SamplingConfig(max_new_tokens=6, greedy=True))  # fmt: skip


@pytest.fixture(scope="module")
def fitted():
    lm = make_lm("llama")
    fit = fit_es(lm, LetterScorer(), **SMALL)
    return lm, fit


def _logits(lm, texts=("the quick brown fox", "you are a")):
    with torch.no_grad():
        return lm.model(**lm.encode(list(texts)).model_inputs()).logits


def test_gram_route_spans_the_svd_subspaces():
    torch.manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(400, 24, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(24, 24, dtype=torch.float64))
    s = torch.linspace(10, 1, 24, dtype=torch.float64)  # distinct singular values
    w = (u * s) @ v.T
    s_gram, v_gram = right_singular(w.float(), block_rows=64)
    s_svd, v_svd = right_singular_svd(w)
    np.testing.assert_allclose(s_gram, s_svd, rtol=1e-4)
    overlap = (v_gram.T @ v_svd).abs()
    np.testing.assert_allclose(overlap.diagonal(), np.ones(24), atol=1e-4)
    for k in (1, 5, 12):  # the top-k subspaces coincide
        proj = v_gram[:, :k] @ v_gram[:, :k].T
        np.testing.assert_allclose(proj @ v_svd[:, :k], v_svd[:, :k], atol=1e-4)


def test_fit_collects_states_and_selects_directions(fitted):
    _, fit = fitted
    stats = fit.meta.stats
    assert stats["toxic_states"] >= 3 and stats["generated"]["clean_texts"] >= 1
    assert stats["generated"]["rejected_implausible"] == 0  # greedy: the argmax is the token
    assert all("o" in t for t in stats["toxic_tokens"])  # occlusion found the 'o' tokens
    iv = fit.intervention()
    assert iv.k == 3 and iv.alpha == 0.2
    chosen = iv.tensors["indices"].tolist()
    assert chosen == torch.argsort(fit.delta.abs(), descending=True)[:3].tolist()


def test_selection_does_not_depend_on_singular_vector_signs(fitted):
    _, fit = fitted
    gen = torch.Generator().manual_seed(0)
    flips = torch.where(torch.rand(fit.v.shape[1], generator=gen) < 0.5, -1.0, 1.0).double()
    assert (flips < 0).any() and (flips > 0).any()
    # delta measured again from the fit's own states in the flipped basis, not flipped by hand
    v = fit.v * flips
    every = (torch.ones(len(fit.states.toxic), dtype=torch.bool),
             torch.ones(len(fit.states.clean), dtype=torch.bool))  # fmt: skip
    w = fit.projections.weigh(*every)
    delta = (fit.states.toxic.double() @ v).mean(0) - w @ (fit.states.clean.double() @ v)
    torch.testing.assert_close(delta, fit.delta * flips)
    flipped = replace(fit, v=v, delta=delta)
    assert torch.equal(
        flipped.intervention().tensors["indices"], fit.intervention().tensors["indices"]
    )


def test_clean_weights_first_and_matched_by_hand():
    toxic_keys = torch.tensor([1, 1, 2])
    clean_pos = torch.tensor([0, 1, 2, 0, 1, 3])
    first = clean_weights(toxic_keys, clean_pos, clean_pos, "first")
    assert first.tolist() == [0.5, 0, 0, 0.5, 0, 0]  # the first token of each continuation
    # matched: position 1 holds 2/3 of the toxic states (two clean states share it), position 2
    # holds 1/3 (one clean state), positions 0 and 3 none
    matched = clean_weights(toxic_keys, clean_pos, clean_pos, "matched")
    torch.testing.assert_close(matched, torch.tensor([0, 1 / 3, 1 / 3, 0, 1 / 3, 0],
                                                     dtype=torch.float64))  # fmt: skip
    assert float(matched.sum()) == pytest.approx(1.0)
    with pytest.raises(InputError, match="no clean states at the positions"):
        clean_weights(torch.tensor([5, 5, 5]), clean_pos, clean_pos, "matched")


def test_identity_cases(fitted):
    lm, fit = fitted
    before = _logits(lm)
    for iv in (fit.intervention(alpha=1.0), fit.intervention(k=0)):
        with iv.applied(lm):
            assert torch.equal(_logits(lm), before)


def test_hooked_equals_baked_equals_exported(fitted, tmp_path):
    _, fit = fitted
    iv = fit.intervention(k=4, alpha=0.0)
    lm = make_lm("llama")  # a fresh copy of the same weights: baking edits in place
    emb = lm.model.get_input_embeddings().weight.detach().clone()
    original = _logits(lm)
    with iv.applied(lm):
        hooked = _logits(lm)
    assert not torch.allclose(hooked, original)
    with iv.baked(lm):  # baked for a block, then put back: weights, tie and all
        torch.testing.assert_close(_logits(lm), hooked, atol=1e-4, rtol=0)
        assert not lm.arch.tied
    assert lm.arch.tied and lm.unembedding.weight is lm.model.get_input_embeddings().weight
    assert torch.equal(_logits(lm), original)
    folder = export_model(lm, iv, tmp_path / "exported")
    assert torch.equal(_logits(lm), original) and lm.arch.tied  # the export leaves lm as it was
    assert torch.equal(lm.model.get_input_embeddings().weight, emb)
    reloaded = tf.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert torch.equal(reloaded.get_input_embeddings().weight, emb)
    ids = lm.encode(["the quick brown fox", "you are a"])
    with torch.no_grad():
        plain = reloaded(**ids.model_inputs()).logits
    torch.testing.assert_close(plain, hooked, atol=1e-4, rtol=0)
    iv.bake(lm)
    with pytest.raises(ArtifactError, match="differ"):  # already baked in
        iv.bake(lm)


def _greedy(model, ids, steps=6):
    with torch.no_grad():
        return model.generate(**ids.model_inputs(), max_new_tokens=steps, do_sample=False,
                              pad_token_id=0)[:, ids.input_ids.shape[1]:]  # fmt: skip


def test_centered_dampening_leaves_as_a_logit_bias(fitted, tmp_path):
    """The constant logit shift of centered dampening bakes into a head bias and travels in the
    export as a logit bias: transformers' generate applies it with no eigenshift imported, and
    eigenshift's loader puts it back so logits (perplexity) equal the hook's."""
    lm, _ = fitted
    fit = fit_es(lm, LetterScorer(), **{**SMALL, "recipe": "matched"})
    iv = fit.intervention(alpha=0.0)
    assert iv.params["dampen"] == "centered" and iv.params["contrast"] == "matched"
    fresh = make_lm("llama")
    ids = fresh.encode(["the quick brown fox", "you are a"])
    before = _logits(fresh)
    with iv.applied(fresh):
        hooked = _logits(fresh)
        hooked_tokens = _greedy(fresh.model, ids)
    assert not torch.allclose(hooked, before) and torch.equal(_logits(fresh), before)
    # the constant part alone really shifts the logits (not only the low-rank map)
    shift = iv.edits(fresh)[0].affine.shift
    assert float(shift.norm()) > 1e-3

    with iv.baked(fresh):
        torch.testing.assert_close(_logits(fresh), hooked, atol=1e-4, rtol=0)  # a head bias
        assert fresh.logit_bias_added
    assert fresh.unembedding.bias is None and not fresh.logit_bias_added  # put back
    folder = export_model(fresh, iv, tmp_path / "centered")
    assert torch.equal(_logits(fresh), before)
    bias = json.loads((folder / "logit_bias.json").read_text())
    assert len(bias) == fresh.model.config.vocab_size

    plain = tf.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert plain.lm_head.bias is None  # the family's head has none: the bias is not in weights
    assert torch.equal(_greedy(plain, ids), hooked_tokens)
    with torch.no_grad():
        logits = plain(**ids.model_inputs()).logits
    values = torch.tensor([bias[str(i)] for i in range(len(bias))])
    torch.testing.assert_close(logits + values, hooked, atol=1e-4, rtol=0)

    reloaded = load_model(str(folder))
    torch.testing.assert_close(_logits(reloaded), hooked, atol=1e-4, rtol=0)
    assert torch.equal(_greedy(reloaded.model, ids), hooked_tokens)  # not applied twice
    assert reloaded.logit_bias_added  # so a further export carries it again


def test_a_logit_bias_under_soft_capping_is_refused(fitted, tmp_path):
    lm, _ = fitted
    fit = fit_es(lm, LetterScorer(), **{**SMALL, "recipe": "matched"})
    capped = make_lm("llama")
    capped.model.config.final_logit_softcapping = 30.0
    with pytest.raises(NotBakeableError, match="soft-caps"):
        export_model(capped, fit.intervention(alpha=0.0), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_artifact_round_trip_and_refusal(fitted, tmp_path):
    lm, fit = fitted
    iv = fit.intervention()
    iv.save(tmp_path / "es")
    loaded = load_intervention(tmp_path / "es", lm)
    assert isinstance(loaded, EigenShift) and loaded.k == iv.k and loaded.alpha == iv.alpha
    assert set(loaded.tensors) == {"v_k", "indices", "singular_values", "deltas", "scores",
                                   "clean_mean"}  # fmt: skip
    assert loaded.meta.stats["toxic_states"] == fit.meta.stats["toxic_states"]
    with pytest.raises(ArtifactError, match=r"weights of 'lm_head'"):
        load_intervention(tmp_path / "es", make_lm("llama", seed=3))


def test_too_few_toxic_states_says_what_to_do():
    lm = make_lm("llama")

    class Clean:
        name = "never"

        def score(self, texts):
            return np.zeros(len(texts))

    with pytest.raises(InputError, match=r"only 0 toxic .*--fit-prompts"):
        fit_es(lm, Clean(), **SMALL)


def test_config_is_validated():
    with pytest.raises(InputError, match="recipe"):
        EigenShiftConfig(recipe="magic")
    with pytest.raises(InputError, match="not both"):
        EigenShiftConfig(k=3, k_fraction=0.1)
    with pytest.raises(InputError, match="alpha"):
        EigenShiftConfig(alpha=1.5)
    assert EigenShiftConfig(k_fraction=0.25).n_directions(576) == 144
    assert (
        EigenShiftConfig().n_directions(576) == 2 and EigenShiftConfig(k=0).n_directions(576) == 0
    )


def test_explain_lists_tokens_for_each_direction(fitted, tmp_path):
    lm, fit = fitted
    iv = fit.intervention()
    rows = directions(lm, iv, top=5)
    assert len(rows) == iv.k and len(rows[0]["toxic_side_tokens"]) == 5
    # The toxic side really is where W v_i, oriented by delta_i, is largest.
    v = iv.tensors["v_k"][:, 0]
    idx = iv.tensors["indices"][0]
    column = torch.sign(iv.tensors["deltas"][idx]) * (lm.unembedding.weight.detach() @ v)
    assert rows[0]["toxic_side_tokens"][0] == lm.tokenizer.decode([int(column.argmax())])
    paths = write_explanation(lm, iv, tmp_path)
    assert paths["figure"].exists() and "| 1 |" in paths["markdown"].read_text()
