from __future__ import annotations

import pytest
import torch
from conftest import PROMPTS, make_lm

from eigenshift.capture.hooks import capture, transform
from eigenshift.core.errors import InputError
from eigenshift.engines import generation
from eigenshift.engines.generation import SamplingConfig, generate, sample_top_p, sorted_top_p


def _key(gens):
    return [(g.prompt_index, g.sample_index, g.token_ids) for g in gens]


@pytest.mark.parametrize("family", ["llama", "gpt2", "gemma3_text", "gpt_neox"])
@pytest.mark.parametrize("greedy", [True, False])
@pytest.mark.parametrize("batch", [15, 4])  # 4: a prompt's samples split over two batches
def test_batched_generation_equals_one_by_one(family, greedy, batch):
    """Batched rows, whose samples share their prompt's pass, equal rows generated alone."""
    lm = make_lm(family, dtype=torch.float64)  # float64: no ties broken differently by rounding
    cfg = SamplingConfig(max_new_tokens=8, samples=3, greedy=greedy, seed=7, batch_size=batch)
    batched = generate(lm, PROMPTS, cfg, capture_hidden=True, progress=False)
    one = SamplingConfig(max_new_tokens=8, samples=3, greedy=greedy, seed=7, batch_size=1)
    singles = []
    for i, prompt in enumerate(PROMPTS):
        singles += generate(lm, [prompt], one, prompt_ids=[i], capture_hidden=True, progress=False)
    assert _key(batched) == _key(singles)
    for a, b in zip(batched, singles, strict=True):
        assert a.text == b.text
        torch.testing.assert_close(a.hidden, b.hidden, atol=1e-8, rtol=1e-6)


def test_same_seed_same_output_other_seed_other_output(tiny_llama):
    cfg = SamplingConfig(max_new_tokens=10, samples=4, seed=1)
    first = generate(tiny_llama, PROMPTS, cfg, progress=False)
    again = generate(tiny_llama, PROMPTS, cfg, progress=False)
    other = generate(
        tiny_llama, PROMPTS, SamplingConfig(max_new_tokens=10, samples=4, seed=2), progress=False
    )
    assert _key(first) == _key(again)
    assert _key(first) != _key(other)
    # Samples of one prompt differ from each other (each row has its own random stream).
    assert len({tuple(g.token_ids) for g in first if g.prompt_index == 0}) > 1


def test_captured_state_is_the_one_that_emitted_each_token():
    lm = make_lm("gpt2")
    gens = generate(
        lm,
        PROMPTS[:2],
        SamplingConfig(max_new_tokens=6, seed=3),
        capture_hidden=True,
        progress=False,
    )
    for g in gens:
        prompt_ids = lm.tokenizer(g.prompt)["input_ids"]
        full = torch.tensor([prompt_ids + g.token_ids])
        with capture(lm.unembedding, "input") as states, torch.no_grad():
            lm.model(full)
        n = len(g.token_ids)
        expected = states[0][0, len(prompt_ids) - 1 : len(prompt_ids) - 1 + n]
        torch.testing.assert_close(g.hidden, expected, atol=1e-5, rtol=1e-4)


def test_generation_stops_at_eos():
    lm = make_lm("llama")

    def eos_after_two(logits):
        # <eos> (id 1) wins once a row has generated two tokens (prompt lengths differ per row).
        logits = logits.clone()
        if calls[0] >= 2:
            logits[..., 1] += 1000.0
        calls[0] += 1
        return logits

    calls = [0]
    with transform(lm.unembedding, eos_after_two):
        gens = generate(
            lm,
            PROMPTS[:3],
            SamplingConfig(max_new_tokens=6, greedy=True),
            capture_hidden=True,
            progress=False,
        )
    assert calls[0] == 3  # all rows finished: the loop stopped early
    for g in gens:
        assert len(g.token_ids) == 2 and g.hidden.shape[0] == 2
        assert 1 not in g.token_ids


def test_top_p_with_candidates_equals_full_sort():
    torch.manual_seed(0)
    logits = torch.randn(64, 5000) * 3
    logits[:8] *= 0.01  # near-flat rows: the top candidates hold less than p, forcing the fallback
    probs = torch.softmax(logits, -1)
    noise = torch.empty(64, 5000).exponential_()
    fast = sample_top_p(probs, noise, 0.9, candidates=50)
    full = sample_top_p(probs, noise, 0.9, candidates=5000)
    assert torch.equal(fast, full)


@pytest.mark.parametrize("rounds", [1, generation.RACE_ROUNDS])  # 1: rows left to the sort
@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.95, 0.999])
def test_the_race_first_picks_what_the_sorted_prefix_picks(top_p, rounds, monkeypatch):
    monkeypatch.setattr(generation, "RACE_ROUNDS", rounds)
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(256, 5000, generator=g) * torch.linspace(0.05, 6, 256)[:, None]
    probs = torch.softmax(logits, -1)  # from near-flat rows to peaked ones
    noise = torch.empty(256, 5000).exponential_(generator=g)
    assert torch.equal(sample_top_p(probs, noise, top_p), sorted_top_p(probs, noise, top_p))


def test_top_p_samples_only_from_the_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).repeat(4000, 1)
    noise = torch.empty(4000, 4).exponential_(generator=torch.Generator().manual_seed(0))
    tokens = sample_top_p(probs, noise, 0.8, candidates=2)
    counts = torch.bincount(tokens, minlength=4).float() / 4000
    assert counts[2] == 0 and counts[3] == 0  # 0.5 + 0.3 reaches p: the nucleus is {0, 1}
    assert abs(counts[0] - 0.5 / 0.8) < 0.03
    everything = torch.bincount(sample_top_p(probs, noise, 1.0), minlength=4).float() / 4000
    torch.testing.assert_close(everything, probs[0], atol=0.03, rtol=0)  # top_p 1: plain sampling


def test_tiny_rounding_moves_the_race_far_less_than_an_inverse_cdf():
    """Why sampling is a race: a rounding-sized perturbation of flat distributions (the long
    tails a top-p of 0.95 keeps) moves inverse-CDF draws, and race draws almost never."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2048, 5000, generator=g) * 0.5
    probs = torch.softmax(logits, -1)
    nudged = torch.softmax(logits + 1e-4 * torch.randn(2048, 5000, generator=g), -1)
    noise = torch.empty(2048, 5000).exponential_(generator=g)
    raced = int((sample_top_p(probs, noise, 0.95) != sample_top_p(nudged, noise, 0.95)).sum())
    u = torch.rand(2048, 1, generator=g)
    inverse = int(((probs.cumsum(-1) < u).sum(-1) != (nudged.cumsum(-1) < u).sum(-1)).sum())
    assert raced <= 1 and inverse >= 5


def test_sampling_config_is_validated():
    with pytest.raises(InputError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(InputError, match="temperature"):
        SamplingConfig(temperature=0)
    with pytest.raises(InputError, match="max_new_tokens"):
        SamplingConfig(max_new_tokens=0)
