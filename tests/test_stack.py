"""Stacking: a stack's hooks equal its members' applied in order, its bake equals its hooks (two
maps that do not commute at one site), it saves, loads and re-checks its members, its knob is
the last member's strength, and what it refuses."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_lm
from test_baselines import DATA, _logits

from eigenshift.core.errors import ArtifactError, InputError
from eigenshift.interventions import (
    MeanDifferenceSteering,
    ScaleUnembeddingInput,
    Stack,
    applied_all,
    load_intervention,
)
from eigenshift.interventions.edits import Affine


def _projection(lm) -> ScaleUnembeddingInput:
    """A per-coordinate scale that, next to `_rotation`, does not commute."""
    torch.manual_seed(1)
    return ScaleUnembeddingInput.from_scale(lm, torch.rand(lm.arch.hidden_size) + 0.5)


class _LowRank(ScaleUnembeddingInput):
    """The identity method's artifact with a rank-1 removal added to its edit (a test double
    for EigenShift's projection at the same site, without gathering evidence)."""

    def edits(self, lm):
        (edit,) = super().edits(lm)
        d = lm.arch.hidden_size
        v = torch.linspace(-1, 1, d).reshape(d, 1)
        v = v / v.norm()
        scale = self.tensors["scale"]
        on = scale.to(*lm.placement(edit.site.module))
        return [type(edit)(edit.site, lambda h: h * on - (h @ v) @ v.T,
                           Affine(scale=scale, left=v, right=v))]  # fmt: skip


def test_a_stack_is_its_members_in_order_and_bakes_like_its_hooks(tmp_path):
    lm = make_lm("gpt2")  # a bias to fold steering's shift into
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, strength=2.0, progress=False)
    scale = _projection(lm)
    stack = Stack.fit(lm, members=[scale, steer])
    with applied_all([scale, steer], lm):
        by_members = _logits(lm)
    with stack.applied(lm):
        assert torch.allclose(_logits(lm), by_members)
    with stack.baked(lm):
        assert torch.allclose(_logits(lm), by_members, atol=1e-4)

    stack.save(tmp_path / "stack")
    loaded = load_intervention(tmp_path / "stack", lm)
    assert isinstance(loaded, Stack) and loaded.digest() == stack.digest()
    assert [m.method for m in loaded.members()] == ["identity", "steer"]
    assert "then steer" in loaded.describe(lm)


def test_two_input_side_edits_at_one_site_fold_in_the_order_the_hooks_run():
    lm = make_lm("llama")
    first, second = _projection(lm), _LowRank.from_scale(lm, torch.ones(lm.arch.hidden_size))
    before = _logits(lm)
    for members in ([first, second], [second, first]):
        with applied_all(members, lm):
            hooked = _logits(lm)
        assert not torch.allclose(hooked, before)
        stack = Stack.of(members)
        stack.members = lambda members=members: list(members)  # type: ignore[method-assign]
        with stack.baked(lm):
            assert torch.allclose(_logits(lm), hooked, atol=1e-4), [m.method for m in members]
    assert torch.allclose(_logits(lm), before)


def test_the_stack_knob_is_the_last_members_strength():
    lm = make_lm("llama")
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, progress=False)
    stack = Stack.fit(lm, members=[_projection(lm), steer], strength=0.5)
    assert stack.params["strength"] == 0.5 and stack.members()[-1].params["strength"] == 0.5
    stronger = stack.with_params(strength=3.0)
    assert stronger.members()[-1].params["strength"] == 3.0
    assert stronger.members()[0].tensors["scale"].equal(stack.members()[0].tensors["scale"])
    with pytest.raises(InputError, match="can change strength"):
        stack.with_params(alpha=0.0)
    no_knob = Stack.fit(lm, members=[steer, _projection(lm)])
    assert no_knob.params["strength"] is None
    with pytest.raises(InputError, match="'identity', has no strength"):
        no_knob.with_params(strength=2.0)
    nested = Stack.fit(lm, members=[no_knob, steer])  # a stack contributes its members
    assert [m.method for m in nested.members()] == ["steer", "identity", "steer"]


def test_what_a_stack_refuses(tmp_path):
    lm, other = make_lm("llama"), make_lm("llama", seed=1)
    steer = MeanDifferenceSteering.fit(lm, data=DATA, progress=False)
    with pytest.raises(InputError, match="two or more"):
        Stack.fit(lm, members=[steer])
    with pytest.raises(InputError, match="needs two or more fitted interventions"):
        Stack.fit(lm)
    foreign = _projection(other)
    with pytest.raises(ArtifactError, match="weights of"):
        Stack.fit(lm, members=[steer, foreign])
    with pytest.raises(InputError, match="other weights of"):
        Stack.of([steer, MeanDifferenceSteering.fit(other, data=DATA, progress=False)])

    Stack.fit(lm, members=[_projection(lm), steer]).save(tmp_path / "s")
    meta_file = tmp_path / "s" / "intervention.json"
    raw = json.loads(meta_file.read_text())
    raw["params"]["members"][1]["params"]["strength"] = "strong"
    meta_file.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="parameters are damaged"):
        load_intervention(tmp_path / "s", lm)
    raw["params"]["members"][1] = {"method": "steer"}
    meta_file.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="member 1 is damaged"):
        load_intervention(tmp_path / "s", lm)


def test_tune_varies_a_stacks_last_strength_and_keeps_one_without_it():
    from eigenshift.studies.points import strength_points

    lm = make_lm("llama")
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, progress=False)
    points = strength_points("both", Stack.fit(lm, members=[_projection(lm), steer]), [0.5, 2])
    assert list(points) == ["both-s0.5", "both-s2"]
    assert points["both-s2"].members()[-1].params["strength"] == 2.0
    fixed = Stack.fit(lm, members=[steer, _projection(lm)])
    assert list(strength_points("both", fixed, [0.5, 2])) == ["both"]


def test_a_stack_with_eigenshift_keeps_its_index_tensor_and_round_trips(tmp_path):
    from conftest import fit_es
    from test_eigenshift import SMALL, LetterScorer

    lm = make_lm("gpt2")
    eigenshift = fit_es(lm, LetterScorer(), **SMALL).intervention()
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, progress=False)
    stack = Stack.fit(lm, members=[eigenshift, steer])
    assert stack.tensors["0.indices"].dtype == torch.int64
    stack.save(tmp_path / "s")
    loaded = load_intervention(tmp_path / "s", lm)
    with applied_all([eigenshift, steer], lm):
        want = _logits(lm)
    with loaded.baked(lm):
        assert torch.allclose(_logits(lm), want, atol=1e-4)


def test_members_sharing_storage_save_and_a_hand_edited_stack_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    lm = make_lm("llama")
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, progress=False)
    Stack.fit(lm, members=[steer, steer]).save(tmp_path / "twice")  # one tensor, twice
    assert len(load_intervention(tmp_path / "twice", lm).members()) == 2

    Stack.fit(lm, members=[_projection(lm), steer]).save(tmp_path / "s")
    meta_file, tensor_file = tmp_path / "s" / "intervention.json", tmp_path / "s" / (
        "intervention.safetensors")
    raw = json.loads(meta_file.read_text())
    raw["weight_hashes"].pop(lm.arch.unembedding)  # the identity member's module, unvouched
    meta_file.write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="weight hashes are not its members'"):
        load_intervention(tmp_path / "s", lm)
    Stack.fit(lm, members=[_projection(lm), steer]).save(tmp_path / "s")
    tensors = load_file(tensor_file)
    for extra in ({"scale": tensors["0.scale"].clone()}, {"2.vector": tensors["1.vector"].clone()}):
        save_file({**tensors, **extra}, tensor_file)
        with pytest.raises(ArtifactError, match="holds the tensors"):
            load_intervention(tmp_path / "s", lm)
