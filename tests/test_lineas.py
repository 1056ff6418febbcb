"""LinEAS: the distributional loss and the proximal step against numpy, the first step's loss
against the Wasserstein distance computed by hand from the unmodified model's activations, the
fit lowering it, an early map trained for later sites (end to end), the edit against its
formula, and bake, save and load like every per-unit method."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_lm
from test_baselines import DATA, _logits

from eigenshift.capture.activations import collect_activations
from eigenshift.core.errors import InputError
from eigenshift.interventions import LinEAS, LineasConfig, load_intervention
from eigenshift.interventions.lineas import (
    _draw,
    fit_maps,
    quantiles,
    sparse_group_prox,
    wasserstein,
)
from eigenshift.models import resolve_sites, site_width

SMALL = dict(samples=4, batch_size=4, steps=30, learning_rate=0.002, max_length=16)


def test_the_loss_is_the_mean_squared_gap_between_sorted_samples_and_target_quantiles():
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(6, 3)), rng.normal(2.0, 1.5, size=(40, 3))
    levels = (np.arange(6) + 0.5) / 6
    want = np.mean((np.sort(source, axis=0) - np.quantile(target, levels, axis=0)) ** 2)
    got = wasserstein(torch.from_numpy(source).float(), quantiles(torch.from_numpy(target), 6))
    assert float(got) == pytest.approx(want, rel=1e-5)
    same = torch.from_numpy(np.sort(target[:6], axis=0)).float()
    assert float(wasserstein(same.flip(0), same)) == 0.0  # the order of the samples is free


def test_the_proximal_step_is_soft_thresholding_then_group_shrinkage():
    x = torch.tensor([0.5, -0.05, 0.2, 0.01, -0.01])
    sparse_group_prox(x, [3, 2], l1=0.1, group=0.0)
    assert torch.allclose(x, torch.tensor([0.4, 0.0, 0.1, 0.0, 0.0]))
    y = torch.tensor([3.0, 4.0, 0.1, 0.1])
    sparse_group_prox(y, [2, 2], l1=0.0, group=1.0)  # shrink by sqrt(2) / norm, or to zero
    assert torch.allclose(y[:2], torch.tensor([3.0, 4.0]) * (1 - 2**0.5 / 5))
    assert torch.equal(y[2:], torch.zeros(2))


def _setup(lm):
    config = LineasConfig(**SMALL)
    toxic, clean = _draw(DATA, config.samples, config.draw_seed)
    sites = resolve_sites(lm, None, "input")
    return config, toxic, clean, sites, [site_width(lm, s) for s in sites]


def test_the_first_loss_is_the_hand_computed_distance_and_the_fit_lowers_it():
    lm = make_lm("llama")
    config, toxic, clean, sites, widths = _setup(lm)
    # identity maps at the start: the first batch (the seeded permutation's first 4 = all 4
    # toxic texts) is scored in the unmodified model
    src = collect_activations(lm, toxic, sites, pooling="mean", max_length=16, progress=False)
    dst = collect_activations(lm, clean, sites, pooling="mean", max_length=16, progress=False)
    levels = (np.arange(4) + 0.5) / 4
    by_hand = np.mean([np.mean((np.sort(src[s].numpy(), axis=0)
                                - np.quantile(dst[s].double().numpy(), levels, axis=0)) ** 2)
                       for s in sites])  # fmt: skip
    before = _logits(lm)
    *_, losses = fit_maps(lm, toxic, clean, sites, widths, config, progress=False)
    assert losses[0] == pytest.approx(by_hand, rel=1e-4)
    assert np.mean(losses[-5:]) < 0.5 * losses[0]
    assert torch.equal(_logits(lm), before)  # no hook left behind
    assert all(p.requires_grad for p in lm.model.parameters())  # flags put back


def test_an_early_map_is_trained_for_what_it_does_later(monkeypatch):
    """With the loss on the last site only, the first site's map still moves: end to end."""
    import eigenshift.interventions.lineas as lineas

    lm = make_lm("llama")
    config, toxic, clean, sites, widths = _setup(lm)
    original, calls = lineas.wasserstein, []

    def last_only(source, goal):
        calls.append(source.shape[1])
        return original(source, goal) * (len(calls) % 2 == 0)  # the second site of each step

    monkeypatch.setattr(lineas, "wasserstein", last_only)
    w, b, _ = fit_maps(lm, toxic, clean, [sites[0], sites[-1]], [widths[0], widths[-1]],
                       config, progress=False)  # fmt: skip
    head = slice(0, widths[0])
    assert float((w[head] - 1).abs().max()) > 1e-3 or float(b[head].abs().max()) > 1e-3


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_lineas_edits_by_its_formula_and_round_trips(family, tmp_path):
    lm = make_lm(family)
    edit = LinEAS.fit(lm, data=DATA, progress=False, strength=0.5, **SMALL)
    assert edit.meta.stats["loss_last"] < edit.meta.stats["loss_first"]
    w, b = edit.tensors["w"], edit.tensors["b"]
    width = edit.params["widths"][0]
    edits = edit.edits(lm)
    a = torch.randn(2, 3, width)
    want = a * (1 + 0.5 * (w[:width] - 1)) + 0.5 * b[:width]
    assert torch.allclose(edits[0].fn(a), want, atol=1e-6)
    assert edit.with_params(strength=0.0).edits(lm) == []
    edit.save(tmp_path / "l")
    loaded = load_intervention(tmp_path / "l", lm)
    assert loaded.digest() == edit.digest() and "units active" in loaded.describe(lm)
    with loaded.applied(lm):
        hooked = _logits(lm)
    if family == "gpt2":  # Conv1D with a bias: the maps fold exactly
        with loaded.baked(lm):
            assert torch.allclose(_logits(lm), hooked, atol=1e-4)
    with pytest.raises(InputError, match="must not exceed"):
        LineasConfig(samples=8, batch_size=16)
