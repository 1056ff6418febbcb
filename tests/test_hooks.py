from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from eigenshift.capture.hooks import Site, capture, transform


def _logits(lm):
    batch = lm.encode(["the quick brown fox", "you are"])
    with torch.no_grad():
        return lm.model(**batch.model_inputs()).logits


def _no_hooks(module) -> bool:
    return not module._forward_pre_hooks and not module._forward_hooks


def test_capture_and_transform_leave_the_model_as_it_was(family_lm):
    """Each hook does exactly what it says: the head's input or output replaced by fn(tensor),
    checked against the head's linear map computed by hand, and nothing left behind after."""
    lm = family_lm
    head = lm.unembedding
    before = _logits(lm)
    with capture(head, "input") as seen, capture(head, "output") as produced:
        inside = _logits(lm)
    assert torch.equal(inside, before) and len(seen) == len(produced) == 1
    (h,) = seen
    assert h.shape == (*before.shape[:-1], lm.arch.hidden_size)
    # In these families the logits are the head's output, nothing applied after it.
    assert torch.equal(produced[0], before)
    weight, bias = head.weight.detach(), getattr(head, "bias", None)
    torch.testing.assert_close(F.linear(h, weight, bias), before)

    scale = torch.linspace(-1.0, 2.0, lm.arch.hidden_size)

    def on_input(x):
        return x * scale + 0.25

    with transform(head, on_input, side="input"), capture(head, "output") as hooked_out:
        hooked = _logits(lm)
    expected = F.linear(h * scale + 0.25, weight, bias)  # the head's forward on the new input
    torch.testing.assert_close(hooked_out[0], expected)
    torch.testing.assert_close(hooked, expected)
    assert not torch.allclose(hooked, before)  # the transform is not a no-op here
    assert _no_hooks(head)

    with transform(head, lambda y: 2.0 * y - 1.0, side="output"):
        doubled = _logits(lm)
    torch.testing.assert_close(doubled, 2.0 * before - 1.0)
    assert _no_hooks(head)
    assert torch.equal(_logits(lm), before)


def test_a_block_output_transform_reaches_the_next_block(tiny_llama):
    lm = tiny_llama
    first, second = (lm.module(name) for name in lm.arch.block_names()[:2])
    with capture(first, "output") as plain:
        _logits(lm)
    shift = torch.linspace(0.5, 1.5, lm.arch.hidden_size)
    with transform(first, lambda x: x + shift), capture(second, "input") as received:
        _logits(lm)
    torch.testing.assert_close(received[0], plain[0] + shift)
    assert _no_hooks(first) and _no_hooks(second)


def test_hooks_are_removed_when_the_block_raises(tiny_llama):
    lm = tiny_llama
    before = _logits(lm)
    block = lm.module(lm.arch.block_names()[0])
    with pytest.raises(RuntimeError, match="boom"), transform(block, lambda x: x + 1.0):
        assert not torch.equal(_logits(lm), before)
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"), capture(block, "output"):
        raise RuntimeError("boom")
    head = lm.unembedding
    with pytest.raises(RuntimeError, match="boom"), transform(head, lambda h: h * 0, "input"):
        assert _logits(lm).abs().max() == 0  # no bias: a zero input gives zero logits
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"), capture(head, "input"):
        raise RuntimeError("boom")
    assert torch.equal(_logits(lm), before)
    assert _no_hooks(block) and _no_hooks(head)


def test_site_parsing():
    assert Site.parse("a.b") == Site("a.b", "output")
    assert Site.parse("a.b:input") == Site("a.b", "input")
    assert str(Site.parse("a.b:input")) == "a.b:input"
    with pytest.raises(ValueError, match="input"):
        Site.parse("a.b:sideways")
