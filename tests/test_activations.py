from __future__ import annotations

import pytest
import torch
from conftest import PROMPTS, make_lm

from eigenshift.capture.activations import collect_activations, iter_activations, pool


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt"])
@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_batched_capture_equals_one_by_one(family, pooling):
    """Left padding must not change any row: absolute-position models (GPT-2, OPT) included."""
    lm = make_lm(family)
    sites = [lm.arch.mlp_site_names()[0] + ":input", lm.arch.block_names()[-1]]
    batched = collect_activations(lm, PROMPTS, sites, pooling=pooling, batch_size=5, progress=False)
    single = collect_activations(lm, PROMPTS, sites, pooling=pooling, batch_size=1, progress=False)
    lengths = {len(lm.tokenizer(p)["input_ids"]) for p in PROMPTS}
    assert len(lengths) > 2  # the prompts really are padded to different lengths
    for site in sites:
        assert batched[site].shape == (len(PROMPTS), single[site].shape[1])
        torch.testing.assert_close(batched[site], single[site], atol=1e-5, rtol=1e-4)


def test_iter_activations_streams_batches_with_their_indices(tiny_llama):
    site = tiny_llama.arch.mlp_site_names()[1] + ":input"
    seen = []
    for batch in iter_activations(tiny_llama, PROMPTS, [site], batch_size=2, progress=False):
        assert batch.values[site].shape[0] == len(batch.indices) <= 2
        seen.extend(batch.indices)
    assert sorted(seen) == list(range(len(PROMPTS)))


def test_pool_ignores_padding():
    x = torch.tensor([[[9.0], [1.0], [3.0]], [[-5.0], [-7.0], [2.0]]])
    mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert pool(x, mask, "max").flatten().tolist() == [3.0, 2.0]
    torch.testing.assert_close(pool(x, mask, "mean").flatten(), torch.tensor([2.0, -10 / 3]))
    assert pool(x, mask, "last").flatten().tolist() == [3.0, 2.0]
    with pytest.raises(ValueError):
        pool(x, mask, "median")


def test_capture_stops_the_forward_pass_after_the_deepest_site(tiny_llama):
    lm = tiny_llama
    first, last = lm.arch.block_names()[0], lm.arch.block_names()[-1]
    calls = []
    handle = lm.module(last).register_forward_hook(lambda *_: calls.append(1))
    try:
        early = collect_activations(lm, PROMPTS, [first], pooling="mean", progress=False)
        assert calls == []  # the last block never ran
        full = collect_activations(lm, PROMPTS, [first, last], pooling="mean", progress=False)
        assert calls  # ...unless it is captured
    finally:
        handle.remove()
    torch.testing.assert_close(early[first], full[first], atol=0, rtol=0)
    # no hook left behind, and the stopped pass leaves the model whole for the next call
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in lm.model.modules())
