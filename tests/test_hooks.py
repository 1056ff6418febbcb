from __future__ import annotations

import pytest
import torch

from eigenshift.hooks import Site, capture, transform


def _logits(lm):
    batch = lm.encode(["the quick brown fox", "you are"])
    with torch.no_grad():
        return lm.model(**batch.model_inputs()).logits


def test_capture_and_transform_leave_the_model_as_it_was(family_lm):
    lm = family_lm
    before = _logits(lm)
    with capture(lm.unembedding, "input") as seen:
        inside = _logits(lm)
    assert torch.equal(inside, before) and seen[0].shape[-1] == lm.arch.hidden_size
    with transform(lm.unembedding, lambda h: h * 0, side="input"):
        zeroed = _logits(lm)
    assert not torch.equal(zeroed, before)
    assert torch.equal(_logits(lm), before)
    assert not lm.unembedding._forward_pre_hooks and not lm.unembedding._forward_hooks


def test_hooks_are_removed_when_the_block_raises(tiny_llama):
    lm = tiny_llama
    before = _logits(lm)
    block = lm.module(lm.arch.block_names()[0])
    with pytest.raises(RuntimeError, match="boom"), transform(block, lambda x: x + 1.0):
        assert not torch.equal(_logits(lm), before)
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"), capture(block, "output"):
        raise RuntimeError("boom")
    assert torch.equal(_logits(lm), before)
    assert not block._forward_hooks and not block._forward_pre_hooks


def test_site_parsing():
    assert Site.parse("a.b") == Site("a.b", "output")
    assert Site.parse("a.b:input") == Site("a.b", "input")
    assert str(Site.parse("a.b:input")) == "a.b:input"
    with pytest.raises(ValueError, match="input"):
        Site.parse("a.b:sideways")
