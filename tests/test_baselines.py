from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import make_lm

from eigenshift.capture.hooks import capture
from eigenshift.core.errors import ArtifactError, InputError, NotBakeableError
from eigenshift.data import LabelledTexts
from eigenshift.interventions import (
    AurA,
    Damp,
    Det0,
    LinearAcT,
    MeanDifferenceSteering,
    applied_all,
    fit_transport,
    load_intervention,
)
from eigenshift.interventions.experts import aura_factors
from eigenshift.locate import NeuronScores

TOXIC = ["you stupid idiot", "what an idiot you are", "shut up you idiot", "idiot idiot"]
CLEAN = ["the quick brown fox", "paris is the capital", "thank you very much", "a model of it"]
DATA = LabelledTexts((TOXIC + CLEAN) * 2, np.array(([1] * 4 + [0] * 4) * 2), "synthetic")


def _logits(lm):
    with torch.no_grad():
        return lm.model(**lm.encode(["the quick brown fox", "you are an"]).model_inputs()).logits


def _neurons(lm, seed=0) -> NeuronScores:
    sites = [f"{n}:input" for n in lm.arch.mlp_site_names()]
    widths = [lm.arch.mlp_width] * len(sites)
    rng = np.random.default_rng(seed)
    auroc = rng.uniform(0.3, 0.9, sum(widths))
    return NeuronScores(sites, widths, auroc, auroc.copy(), {"data_hash": "x", "model": lm.name})


def test_aura_factors_follow_the_formula():
    auroc = np.array([0.3, 0.5, 0.6, 0.9, 1.0, 0.75])
    np.testing.assert_allclose(aura_factors(auroc), [1, 1, 0.8, 0.2, 0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(aura_factors(auroc, k=2), [1, 1, 1, 0.2, 0.0, 1], atol=1e-12)


def test_det0_zeroes_exactly_the_top_k_units_at_every_position(tiny_llama):
    lm, k = tiny_llama, 7
    scores = _neurons(lm)
    det0 = Det0.fit(lm, neurons=scores, k=k)
    top = set(np.argsort(-scores.auroc)[:k].tolist())
    assert set(np.flatnonzero(det0.tensors["factors"].numpy() == 0).tolist()) == top
    assert int((det0.tensors["factors"] != 1).sum()) == k
    width = lm.arch.mlp_width
    down = [lm.module(s.split(":")[0]) for s in scores.sites]
    with det0.applied(lm), capture(down[0], "input") as first, capture(down[1], "input") as second:
        _logits(lm)
    for layer, seen in enumerate((first, second)):
        x = seen[0]  # (batch, tokens, units): the down projection's input after the edit
        for unit in range(width):
            zeroed = layer * width + unit in top
            assert bool((x[..., unit] == 0).all()) == zeroed


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt"])
@pytest.mark.parametrize("method", [AurA, Det0, Damp])
def test_expert_baselines_bake_like_their_hooks(family, method):
    lm = make_lm(family)
    before = _logits(lm)
    edit = method.fit(lm, neurons=_neurons(lm), **({} if method is AurA else {"k": 20}))
    with edit.applied(lm):
        hooked = _logits(lm)
    assert not torch.allclose(hooked, before)
    torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)  # restored
    edit.bake(lm)
    torch.testing.assert_close(_logits(lm), hooked, atol=1e-5, rtol=1e-4)
    with pytest.raises(ArtifactError, match="differ"):
        edit.bake(lm)  # twice is refused


def test_identity_settings_and_bad_input(tiny_llama, tmp_path):
    lm = tiny_llama
    before = _logits(lm)
    for edit in (Damp.fit(lm, neurons=_neurons(lm), alpha=1.0),
                 Det0.fit(lm, neurons=_neurons(lm), k=0),
                 MeanDifferenceSteering.fit(lm, data=DATA, strength=0.0, progress=False),
                 LinearAcT.fit(lm, data=DATA, strength=0.0, progress=False)):  # fmt: skip
        assert edit.edits(lm) == []
        with edit.applied(lm):
            torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)
    with pytest.raises(InputError, match="takes no alpha"):
        AurA.fit(lm, neurons=_neurons(lm), alpha=0.3)
    with pytest.raises(InputError, match="not found"):
        AurA.fit(lm, neurons=_neurons(make_lm("gpt2")))
    narrow = _neurons(lm)
    narrow.widths = [32, 32]  # the right modules, the wrong unit count
    narrow.auroc = narrow.auroc[:64]
    with pytest.raises(InputError, match="computed on another model"):
        AurA.fit(lm, neurons=narrow)
    with pytest.raises(InputError, match="no length-matched"):
        AurA.fit(lm, neurons=_neurons(lm), score="auroc_length_matched")
    with pytest.raises(InputError, match="not both"):
        Damp.fit(lm, neurons=_neurons(lm), k=3, k_fraction=0.1)
    with pytest.raises(InputError, match="k must be between"):
        Damp.fit(lm, neurons=_neurons(lm), k=10**6)
    with pytest.raises(InputError, match="layer must be in"):
        MeanDifferenceSteering.fit(lm, data=DATA, layer=5, progress=False)
    one_class = LabelledTexts(TOXIC * 2, np.ones(8, dtype=int), "x")
    with pytest.raises(InputError, match="at least 2 toxic and 2 non-toxic"):
        LinearAcT.fit(lm, data=one_class, progress=False)


def test_artifacts_reload_and_refuse_another_model(tmp_path):
    lm, other = make_lm("llama"), make_lm("llama", seed=1)
    edits = [AurA.fit(lm, neurons=_neurons(lm)),
             MeanDifferenceSteering.fit(lm, data=DATA, progress=False),
             LinearAcT.fit(lm, data=DATA, progress=False)]  # fmt: skip
    for edit in edits:
        edit.save(tmp_path / edit.method)
        loaded = load_intervention(tmp_path / edit.method, lm)
        with loaded.applied(lm):
            again = _logits(lm)
        with edit.applied(lm):
            torch.testing.assert_close(_logits(lm), again, atol=0, rtol=0)
        with pytest.raises(ArtifactError, match="differ"):
            load_intervention(tmp_path / edit.method, other)
    with applied_all(edits, lm):  # several at once, all removed after
        assert not torch.allclose(_logits(lm), _logits(other))
    before = _logits(make_lm("llama"))
    torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)


def test_steering_adds_the_mean_difference_and_bakes_only_into_a_bias():
    gpt2 = make_lm("gpt2")
    steer = MeanDifferenceSteering.fit(gpt2, data=DATA, layer=0, strength=2.0, progress=False)
    block = gpt2.module(gpt2.arch.block_names()[0])
    with capture(block) as plain:
        _logits(gpt2)
    with steer.applied(gpt2), capture(block) as steered:
        hooked = _logits(gpt2)
    shift = steered[0] - plain[0]
    torch.testing.assert_close(shift, (2.0 * steer.tensors["vector"]).expand_as(shift),
                               atol=1e-5, rtol=1e-4)  # fmt: skip
    steer.bake(gpt2)  # GPT-2's c_proj has a bias, added straight to the residual stream
    torch.testing.assert_close(_logits(gpt2), hooked, atol=1e-4, rtol=1e-4)

    qwen = make_lm("qwen2")  # no MLP bias, and no config switch that gives one
    with pytest.raises(NotBakeableError, match="no bias"):
        MeanDifferenceSteering.fit(qwen, data=DATA, progress=False).bake(qwen)

    opt = make_lm("opt")  # a post-norm block: the bias is normalised before the residual add
    opt.model.config.do_layer_norm_before = False
    for layer in opt.model.model.decoder.layers:
        layer.do_layer_norm_before = False
    before = _logits(opt)
    with pytest.raises(NotBakeableError, match="normalised"):
        MeanDifferenceSteering.fit(opt, data=DATA, layer=0, progress=False).bake(opt)
    torch.testing.assert_close(_logits(opt), before, atol=0, rtol=0)  # the failed bake undone


def test_transport_recovers_a_known_affine_map():
    rng = np.random.default_rng(0)
    source = rng.normal(1.0, 2.0, size=(20000, 3))
    target = 3.0 * rng.normal(1.0, 2.0, size=(15000, 3)) - 2.0  # independent samples
    w, b = fit_transport(source, target)
    np.testing.assert_allclose(w, 3.0, atol=0.05)
    np.testing.assert_allclose(b, -2.0, atol=0.1)
    exact = rng.permutation(2.0 * source[:500] + 1.0)  # same counts: sorted pairs match exactly
    w, b = fit_transport(source[:500], exact)
    np.testing.assert_allclose(w, 2.0, atol=1e-10)
    np.testing.assert_allclose(b, 1.0, atol=1e-10)
    w, b = fit_transport(source, target, mode="mean")  # Mean-AcT: w = 1
    assert (w == 1).all()
    np.testing.assert_allclose(b, target.mean(0) - source.mean(0), atol=1e-12)


def test_linear_act_is_causal_and_bakes_with_full_support():
    lm = make_lm("gpt2")
    causal = LinearAcT.fit(lm, data=DATA, support="all", progress=False)
    parallel = LinearAcT.fit(lm, data=DATA, support="all", causal=False, progress=False)
    width = lm.arch.mlp_width
    first, last = slice(0, width), slice(width, 2 * width)
    torch.testing.assert_close(causal.tensors["w"][first], parallel.tensors["w"][first])
    assert not torch.allclose(causal.tensors["w"][last], parallel.tensors["w"][last])
    # The last layer's maps are what a fit sees with the first layer's maps applied.
    sites = causal.params["sites"]
    first_only = LinearAcT({k: v[first] for k, v in causal.tensors.items()},
                           replace(causal.meta, params={**causal.params, "sites": sites[:1],
                                                        "widths": [width]}))  # fmt: skip
    with first_only.applied(lm):
        refit = LinearAcT.fit(lm, data=DATA, sites=sites[1].split(":")[0], support="all",
                              causal=False, progress=False)  # fmt: skip
    torch.testing.assert_close(refit.tensors["w"], causal.tensors["w"][last])
    torch.testing.assert_close(refit.tensors["b"], causal.tensors["b"][last])

    with causal.applied(lm):
        hooked = _logits(lm)
    causal.bake(lm)
    torch.testing.assert_close(_logits(lm), hooked, atol=1e-4, rtol=1e-4)

    llama = make_lm("llama")
    with pytest.raises(NotBakeableError, match="support"):
        LinearAcT.fit(llama, data=DATA, progress=False).bake(llama)
    mean_act = LinearAcT.fit(llama, data=DATA, mode="mean", support="all", progress=False)
    assert (mean_act.tensors["w"] == 1).all()
    with mean_act.applied(llama):
        hooked = _logits(llama)
    mean_act.bake(llama)  # Llama's config switches MLP biases on (`mlp_bias`): zero but one
    torch.testing.assert_close(_logits(llama), hooked, atol=1e-4, rtol=1e-4)
    qwen = make_lm("qwen2")
    with pytest.raises(NotBakeableError, match="no bias"):
        LinearAcT.fit(qwen, data=DATA, mode="mean", support="all", progress=False).bake(qwen)


def test_baking_at_a_tied_unembedding_unties_it_first(tiny_llama):
    lm = tiny_llama
    assert lm.arch.tied
    embeddings = lm.model.get_input_embeddings().weight.detach().clone()
    site = f"{lm.arch.unembedding}:input"
    width = lm.arch.hidden_size
    rng = np.random.default_rng(0)
    scores = NeuronScores([site], [width], rng.uniform(0.4, 0.9, width), np.zeros(width), {})
    edit = AurA.fit(lm, neurons=scores)
    with edit.applied(lm):
        hooked = _logits(lm)
    edit.bake(lm)
    torch.testing.assert_close(_logits(lm), hooked, atol=1e-5, rtol=1e-4)
    assert torch.equal(lm.model.get_input_embeddings().weight, embeddings)


def test_source_support_maps_only_values_inside_the_fitted_range(tiny_llama):
    lm = tiny_llama
    act = LinearAcT.fit(lm, data=DATA, causal=False, progress=False)  # source support (default)
    site = act.params["sites"][0]
    width = act.params["widths"][0]
    down = lm.module(site.split(":")[0])
    with capture(down, "input") as plain:
        _logits(lm)
    first_only = LinearAcT({k: v[:width] for k, v in act.tensors.items()},
                           replace(act.meta, params={**act.params, "sites": [site],
                                                     "widths": [width]}))  # fmt: skip
    with first_only.applied(lm), capture(down, "input") as edited:
        _logits(lm)
    a, out = plain[0], edited[0]
    w, b, lo, hi = (act.tensors[k][:width] for k in ("w", "b", "lo", "hi"))
    inside = (a >= lo) & (a <= hi)
    assert inside.any() and (~inside).any()
    torch.testing.assert_close(out[~inside], a[~inside], atol=0, rtol=0)
    torch.testing.assert_close(out, torch.where(inside, a * w + b, a), atol=1e-5, rtol=1e-5)


def test_25_2_steering_bakes_into_a_llama_by_switching_its_mlp_biases_on(tmp_path):
    """A Llama-family MLP has no bias, but its config can give every MLP projection one
    (`mlp_bias`): steering exports as plain weights that transformers loads and that compute
    what the hook computes; the model in memory is put back as it was."""
    import transformers as tf

    from eigenshift.export.hf import export_model

    llama = make_lm("llama")
    before = _logits(llama)
    steer = MeanDifferenceSteering.fit(llama, data=DATA, layer=1, strength=2.0, progress=False)
    with steer.applied(llama):
        hooked = _logits(llama)
    export_model(llama, steer, tmp_path / "out")
    assert llama.model.config.mlp_bias is False  # put back, with no bias left anywhere
    assert all(m.bias is None for n, m in llama.model.named_modules() if n.endswith("_proj")
               and hasattr(m, "bias"))  # fmt: skip
    torch.testing.assert_close(_logits(llama), before, atol=0, rtol=0)
    exported = tf.AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert exported.config.mlp_bias is True
    with torch.no_grad():
        logits = exported(**llama.encode(["the quick brown fox", "you are an"])
                          .model_inputs()).logits  # fmt: skip
    torch.testing.assert_close(logits, hooked, atol=1e-4, rtol=1e-4)
    # in bfloat16 the bias rounds differently from the hook's add, element by element, but
    # agrees over the whole output: it bakes (a post-norm block above still refuses)
    half = make_lm("llama", dtype=torch.bfloat16)
    MeanDifferenceSteering.fit(half, data=DATA, layer=1, strength=2.0, progress=False).bake(half)
    assert half.model.config.mlp_bias is True  # bake() keeps the biases it folded into
