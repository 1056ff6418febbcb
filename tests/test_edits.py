"""Edits as data: the one fold against the hook it stands for, on every side and layer type, and
the base's checks around fitting (settings, inputs, knobs) and saving (atomic folders)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import PROMPTS, make_lm

from eigenshift.capture.hooks import Site
from eigenshift.core.errors import InputError, NotBakeableError
from eigenshift.core.io import atomic_folder
from eigenshift.data import LabelledTexts
from eigenshift.interventions import AurA, Edit, LinearAcT, MeanDifferenceSteering
from eigenshift.interventions.edits import Affine, check_foldable, fold, installed
from eigenshift.models.architecture import linear_width


def _logits(lm):
    with torch.no_grad():
        return lm.model(**lm.encode(["the quick brown fox", "you are"]).model_inputs()).logits


def _random_affine(n: int, rank: int = 3, shift: bool = True) -> Affine:
    gen = torch.Generator().manual_seed(n)
    return Affine(
        scale=0.5 + torch.rand(n, generator=gen),
        shift=0.1 * torch.randn(n, generator=gen) if shift else None,
        left=0.3 * torch.randn(n, rank, generator=gen),  # left != right: not a symmetric map
        right=0.3 * torch.randn(n, rank, generator=gen),
    )


def _hook(affine: Affine):
    def fn(a: torch.Tensor) -> torch.Tensor:  # the map written out by hand, in float64
        x = a.double()
        out = x * affine.scale.double() - (x @ affine.right.double()) @ affine.left.double().T
        if affine.shift is not None:
            out = out + affine.shift.double()
        return out.to(a.dtype)

    return fn


# gpt2: Conv1D with biases; opt: nn.Linear with biases; both sides of each
@pytest.mark.parametrize("family,module", [("gpt2", "transformer.h.0.mlp.c_fc"),
                                           ("gpt2", "transformer.h.1.mlp.c_proj"),
                                           ("opt", "model.decoder.layers.0.fc1")])  # fmt: skip
@pytest.mark.parametrize("side", ["input", "output"])
def test_fold_equals_the_hook_for_a_general_affine_map(family, module, side):
    lm = make_lm(family)
    site = Site(module, side)
    affine = _random_affine(linear_width(lm.module(module), side))
    edit = Edit(site, _hook(affine), affine)
    before = _logits(lm)
    with installed(lm, [edit]):
        hooked = _logits(lm)
    assert not torch.allclose(hooked, before)
    torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)  # the hook is gone
    check_foldable(lm, [edit], "test")
    fold(lm, site, affine)
    torch.testing.assert_close(_logits(lm), hooked, atol=1e-4, rtol=1e-4)


def test_a_shift_needs_a_bias_and_nothing_is_written_on_refusal():
    lm = make_lm("llama")  # no biases anywhere
    module = "model.layers.0.mlp.down_proj"
    weight = lm.module(module).weight.detach().clone()
    affine = _random_affine(linear_width(lm.module(module), "input"))
    edit = Edit(Site(module, "input"), _hook(affine), affine, hint="do this instead")
    with pytest.raises(NotBakeableError, match=r"no bias.*do this instead"):
        check_foldable(lm, [edit], "test")
    no_shift = _random_affine(linear_width(lm.module(module), "input"), shift=False)
    check_foldable(lm, [Edit(Site(module, "input"), _hook(no_shift), no_shift)], "test")
    assert torch.equal(lm.module(module).weight, weight)


def test_fit_refuses_misspelt_settings_missing_or_foreign_inputs_and_non_knobs():
    lm = make_lm("llama")
    with pytest.raises(InputError, match=r"no setting 'strenght'.*strength"):
        MeanDifferenceSteering.fit(lm, strenght=2.0)
    with pytest.raises(InputError, match="needs labelled texts"):
        LinearAcT.fit(lm)
    with pytest.raises(InputError, match="needs neuron scores"):
        AurA.fit(lm)
    data = LabelledTexts(PROMPTS * 2, np.array([1, 0] * 5), "x")
    with pytest.raises(InputError, match="takes no data"):
        AurA.fit(lm, data=data)
    steer = MeanDifferenceSteering.fit(lm, data=data, progress=False)
    assert steer.with_params(strength=2.0).strength == 2.0
    with pytest.raises(InputError, match="can change strength without refitting, not layer"):
        steer.with_params(layer=0)


def test_atomic_folder_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert (target / "a.txt").read_text() == "first"  # the old folder, untouched
    with atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folders left
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    refused = pytest.raises(InputError, match="not a folder eigenshift wrote")
    with refused, atomic_folder(theirs, marker="ours.json") as tmp:
        (tmp / "ours.json").write_text("{}")
    assert sorted(p.name for p in theirs.iterdir()) == ["notes.txt"]
    (tmp_path / "empty").mkdir()
    with atomic_folder(tmp_path / "empty", marker="ours.json") as tmp:  # empty: fine to use
        (tmp / "ours.json").write_text("{}")
    assert (tmp_path / "empty" / "ours.json").exists()
