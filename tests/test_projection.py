"""ProFS: the toxic directions of each edited block's embeddings against a numpy computation, the
band of blocks, the edit on the MLP output against its formula, and the bake against the hook
(nn.Linear without bias, GPT-2's Conv1D with one), saved and loaded alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_lm
from test_baselines import DATA, _logits

from eigenshift.capture.activations import collect_activations
from eigenshift.capture.hooks import capture
from eigenshift.core.errors import InputError
from eigenshift.interventions import ProFS, load_intervention
from eigenshift.interventions.projection import layer_band, toxic_directions


def _by_hand(toxic: np.ndarray, clean: np.ndarray, k: int, centering: bool) -> np.ndarray:
    diff = toxic - clean.mean(0)
    if centering:
        corpus = np.linalg.svd(clean)[2][0]
        diff = diff - np.outer(diff @ corpus, corpus)
    return np.linalg.svd(diff)[2][:k].T


@pytest.mark.parametrize("centering", [True, False])
def test_toxic_directions_are_the_top_singular_vectors_of_the_centred_difference(centering):
    rng = np.random.default_rng(0)
    toxic, clean = rng.normal(size=(12, 8)) + 2.0, rng.normal(size=(20, 8))
    got = toxic_directions(torch.from_numpy(toxic), torch.from_numpy(clean), 3, centering)
    want = _by_hand(toxic, clean, 3, centering)
    np.testing.assert_allclose(np.abs(got.numpy().T @ want), np.eye(3), atol=1e-8)  # up to sign
    with pytest.raises(InputError, match="toxic texts"):
        toxic_directions(torch.from_numpy(toxic[:2]), torch.from_numpy(clean), 3, centering)


def test_the_band_is_the_upper_blocks_and_never_empty():
    assert layer_band(30, 0.4, 1.0) == list(range(12, 30))
    assert layer_band(24, 10 / 24, 1.0) == list(range(10, 24))  # ProFS's GPT-2 medium band
    assert layer_band(2, 0.4, 0.5) == [1]
    assert layer_band(4, 0.99, 1.0) == [3]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_profs_projects_the_mlp_output_and_bakes_like_its_hook(family, tmp_path):
    lm = make_lm(family)
    edit = ProFS.fit(lm, data=DATA, k=2, first_layer=0.5, strength=0.8, progress=False)
    layers = edit.params["layers"]
    assert layers == layer_band(lm.arch.num_layers, 0.5, 1.0)
    blocks = [lm.arch.block_names()[i] for i in layers]
    acts = collect_activations(lm, DATA.texts, blocks, pooling="mean", progress=False)
    toxic = torch.from_numpy(DATA.labels.astype(bool))
    for block, v in zip(blocks, edit.tensors["directions"], strict=True):
        want = _by_hand(acts[block][toxic].double().numpy(), acts[block][~toxic].double().numpy(),
                        2, True)  # fmt: skip
        np.testing.assert_allclose(np.abs(v.double().numpy().T @ want), np.eye(2), atol=1e-4)

    before = _logits(lm)
    with edit.applied(lm):
        hooked = _logits(lm)
    assert not torch.allclose(hooked, before)
    torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)  # the hook is gone
    edit.save(tmp_path / "profs")
    again = load_intervention(tmp_path / "profs", lm)
    again.bake(lm)  # a weight edit (GPT-2: Conv1D with a bias, projected too)
    torch.testing.assert_close(_logits(lm), hooked, atol=1e-4, rtol=1e-4)


def test_the_edited_output_keeps_one_minus_strength_of_its_toxic_component():
    lm = make_lm("llama")
    edit = ProFS.fit(lm, data=DATA, k=2, first_layer=0.99, strength=0.75, progress=False)
    site, v = edit.params["sites"][0], edit.tensors["directions"][0]
    module = lm.module(site)
    with capture(module, "input") as inputs:
        _logits(lm)
    with edit.applied(lm), capture(module) as edited:
        _logits(lm)
    plain = module(inputs[0])  # the unedited output for the same input (one edited block)
    torch.testing.assert_close(edited[0], plain - 0.75 * (plain @ v) @ v.T, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(edited[0] @ v, 0.25 * (plain @ v), atol=1e-5, rtol=1e-4)
    with edit.with_params(strength=0.0).applied(lm), capture(module) as untouched:
        _logits(lm)
    torch.testing.assert_close(untouched[0], plain, atol=1e-6, rtol=1e-6)
