"""Models where users' models live: half precision, blocks spread by a device map (a CPU-only
map that offloads a block to disk, so accelerate's hooks load its weights for each call), and
one-line refusals for what cannot work (quantization without CUDA, baking offloaded weights)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import PROMPTS, fit_es

from eigenshift.capture.states import capture_states
from eigenshift.cli import cli
from eigenshift.core.errors import ModelLoadError, NotBakeableError
from eigenshift.data import LabelledTexts
from eigenshift.engines.generation import SamplingConfig, generate
from eigenshift.interventions import (
    MeanDifferenceSteering,
    load_intervention,
)
from eigenshift.models import load_model
from eigenshift.models.placement import is_offloaded

TEXTS = ["you are a stupid idiot", "thank you kindly", "the quick brown fox jumps"]
DATA = LabelledTexts([f"you stupid idiot {i}" for i in range(6)]
                     + [f"the quick brown fox {i}" for i in range(6)],
                     np.array([1] * 6 + [0] * 6), "x")  # fmt: skip


class LetterScorer:
    name = "letter-o"

    def score(self, texts):
        return np.array([0.9 if "o" in t else 0.05 for t in texts])


FIT = dict(evidence="generated", fit_prompts=24, min_toxic=3, k=3, alpha=0.0, recipe="paper",
           sampling=SamplingConfig(max_new_tokens=6, greedy=True), resamples=0)  # fmt: skip


def _logits(lm, texts=TEXTS):
    with torch.no_grad():
        return lm.model(**lm.encode(list(texts)).model_inputs()).logits.float()


def test_dtype_auto_is_float32_on_cpu_and_half_dtypes_load(tiny_folder):
    assert load_model(tiny_folder).dtype == torch.float32  # auto, no GPU
    for name, dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        lm = load_model(tiny_folder, dtype=name)
        assert lm.dtype == dtype and lm.model.dtype == dtype
        assert torch.isfinite(_logits(lm)).all()


def test_bfloat16_capture_and_hooked_equals_baked(tiny_folder):
    """In bfloat16 (8 bits of mantissa, relative spacing 2^-8 = 0.4%) teacher-forced states
    equal the generation's to 2% of their scale, and the baked model's logits equal the hook's to
    3% of the logits' scale: both computations round differently, neither is wrong."""
    lm = load_model(tiny_folder, dtype="bfloat16")
    gens = generate(lm, PROMPTS, SamplingConfig(max_new_tokens=5, greedy=True),
                    capture_hidden=True, progress=False)  # fmt: skip
    captured = capture_states(lm, [g.text for g in gens], [g.prompt for g in gens],
                              token_ids=[g.token_ids for g in gens], progress=False)  # fmt: skip
    assert captured.states.dtype == torch.float32  # statistics are kept in float32
    scale = float(max(g.hidden.float().abs().max() for g in gens))
    for i, g in enumerate(gens):
        torch.testing.assert_close(captured.states[captured.of_text(i)], g.hidden.float(),
                                   atol=0.02 * scale, rtol=0)  # fmt: skip

    fit = fit_es(lm, LetterScorer(), **FIT)
    iv = fit.intervention()
    with iv.applied(lm):
        hooked = _logits(lm)
    before = _logits(lm)
    iv.bake(lm)
    baked = _logits(lm)
    scale = float(before.abs().max())
    assert (hooked - before).abs().max() > 0.05 * scale  # the edit is large next to the rounding
    torch.testing.assert_close(baked, hooked, atol=0.03 * scale, rtol=0)


@pytest.fixture(scope="module")
def offloading_map(tmp_path_factory):
    """Block 1 on disk, the rest on the CPU: accelerate loads block 1 for each call."""
    path = tmp_path_factory.mktemp("maps") / "map.json"
    path.write_text(json.dumps({"model.embed_tokens": "cpu", "model.layers.0": "cpu",
                                "model.layers.1": "disk", "model.norm": "cpu",
                                "model.rotary_emb": "cpu", "lm_head": "cpu"}))  # fmt: skip
    return str(path)


def test_a_device_map_gives_the_same_states_and_edits(tiny_folder, offloading_map, tmp_path):
    one = load_model(tiny_folder)
    spread = load_model(tiny_folder, device_map=offloading_map)
    block = "model.layers.1"
    assert is_offloaded(spread.module(block)) and not is_offloaded(one.module(block))
    assert spread.module(f"{block}.mlp.down_proj").weight.device.type == "meta"
    # artifacts recognise the model wherever its weights live
    for name in (f"{block}.mlp.down_proj", "lm_head"):
        assert spread.weight_hash(name) == one.weight_hash(name)
    torch.testing.assert_close(_logits(spread), _logits(one), atol=1e-5, rtol=0)
    a = capture_states(one, TEXTS, progress=False)
    b = capture_states(spread, TEXTS, progress=False)
    torch.testing.assert_close(b.states, a.states, atol=1e-5, rtol=0)
    assert torch.equal(a.ranks, b.ranks)

    # an EigenShift fitted on the spread model equals the one fitted on one device
    fits = [fit_es(m, LetterScorer(), **FIT) for m in (one, spread)]
    torch.testing.assert_close(fits[1].delta, fits[0].delta, atol=1e-5, rtol=0)
    # edits saved on one device apply to the spread model, including at the offloaded block
    steer = MeanDifferenceSteering.fit(one, data=DATA, layer=1, strength=2.0, progress=False)
    for iv in (fits[0].intervention(), steer):
        iv.save(tmp_path / iv.meta.method)
        loaded = load_intervention(tmp_path / iv.meta.method, spread)
        with iv.applied(one):
            expected = _logits(one)
        with loaded.applied(spread):
            got = _logits(spread)
        assert (expected - _logits(one)).abs().max() > 1e-4  # the edit changes the logits
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    # weights that are offloaded are never written
    with pytest.raises(NotBakeableError, match=r"offloaded.*load the model"):
        load_intervention(tmp_path / "steer", spread).bake(spread)
    torch.testing.assert_close(_logits(spread), _logits(one), atol=1e-5, rtol=0)


def test_placement_refusals_are_one_line(tiny_folder, tmp_path):
    with pytest.raises(ModelLoadError, match="needs a CUDA GPU"):
        load_model(tiny_folder, quantize="4bit")
    with pytest.raises(ModelLoadError, match="neither one of auto"):
        load_model(tiny_folder, device_map="everywhere")
    bad = tmp_path / "map.json"
    bad.write_text('["cpu"]')
    with pytest.raises(ModelLoadError, match="JSON object of module name"):
        load_model(tiny_folder, device_map=str(bad))
    result = CliRunner().invoke(cli, ["info", "--model", tiny_folder, "--quantize", "8bit"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "CUDA" in lines[0], result.output


def test_24_9_device_maps_are_checked_first_and_leave_no_offload_folder(tiny_folder, tmp_path,
                                                                          offloading_map):
    from eigenshift.core.assets import cache_dir

    offload = cache_dir() / "offload"
    before = set(offload.iterdir()) if offload.is_dir() else set()
    load_model(tiny_folder, device_map=offloading_map)
    assert set(offload.iterdir()) == before  # safetensors weights are read in place: no folder
    for mapping, why in (({"": "cuda:3"}, "CUDA"), ({"": "banana"}, "not a device"),
                         ({"": 7}, "CUDA"), ({"model.bogus": "cpu", "": "cpu"}, "no module"),
                         ({"model.layers.0": "disk"}, "nowhere")):  # fmt: skip
        path = tmp_path / "map.json"
        path.write_text(json.dumps(mapping))
        result = CliRunner().invoke(cli, ["info", "--model", tiny_folder, "--device-map",
                                          str(path)])  # fmt: skip
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and why in lines[0], result.output
    path.write_text(json.dumps({"": "cpu", "lm_head.weight": "cpu"}))  # a tensor's name too
    load_model(tiny_folder, device_map=str(path))
    # "" beside other modules is the rest of the model, which then offloads as asked.
    path.write_text(json.dumps({"model.layers.1": "disk", "": "cpu"}))
    spread = load_model(tiny_folder, device_map=str(path))
    assert is_offloaded(spread.module("model.layers.1"))
    assert not is_offloaded(spread.module("model.layers.0"))
