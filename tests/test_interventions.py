from __future__ import annotations

import json

import pytest
import torch
from conftest import make_lm

from eigenshift.capture.hooks import Site
from eigenshift.core.errors import ArtifactError, InputError, NotBakeableError
from eigenshift.interventions import (
    METHODS,
    Edit,
    IdentityConfig,
    Intervention,
    ScaleUnembeddingInput,
    applied_all,
    load_intervention,
    method_class,
    register,
)


def _logits(lm):
    with torch.no_grad():
        return lm.model(**lm.encode(["the quick brown fox", "you are"]).model_inputs()).logits


def _scale(d, seed=0):
    return 0.5 + torch.rand(d, generator=torch.Generator().manual_seed(seed))


def test_identity_fit_changes_nothing(tiny_llama):
    before = _logits(tiny_llama)
    ident = ScaleUnembeddingInput.fit(tiny_llama)
    with ident.applied(tiny_llama):
        torch.testing.assert_close(_logits(tiny_llama), before, atol=0, rtol=0)
    assert method_class("identity") is ScaleUnembeddingInput  # reachable by name, as artifacts are
    half = ScaleUnembeddingInput.fit(tiny_llama, scale=0.5)  # a config setting by name
    assert torch.equal(half.tensors["scale"], torch.full((tiny_llama.arch.hidden_size,), 0.5))
    with pytest.raises(InputError, match="no setting 'scales'"):  # a misspelt one is an error
        ScaleUnembeddingInput.fit(tiny_llama, scales=0.5)


@pytest.mark.parametrize("family", ["llama", "mistral", "gpt2"])
def test_applied_is_restored_and_bake_matches_hook(family):
    lm = make_lm(family)
    emb_before = lm.model.get_input_embeddings().weight.detach().clone()
    before = _logits(lm)
    edit = ScaleUnembeddingInput.from_scale(lm, _scale(lm.arch.hidden_size))
    with edit.applied(lm):
        hooked = _logits(lm)
    assert not torch.allclose(hooked, before)
    torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)
    with pytest.raises(RuntimeError), edit.applied(lm):
        raise RuntimeError("inside")
    torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)

    edit.bake(lm)
    torch.testing.assert_close(_logits(lm), hooked, atol=1e-5, rtol=1e-5)
    assert torch.equal(lm.model.get_input_embeddings().weight, emb_before)  # tied: never edited
    with pytest.raises(ArtifactError, match="differ"):  # applying twice is refused
        edit.bake(lm)


def test_save_load_round_trip_and_refusal(tmp_path):
    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.from_scale(lm, _scale(lm.arch.hidden_size))
    folder = edit.save(tmp_path / "edit")
    assert sorted(p.name for p in folder.iterdir()) == [
        "intervention.json",
        "intervention.safetensors",
    ]
    meta = json.loads((folder / "intervention.json").read_text())
    assert meta["method"] == "identity" and "lm_head" in meta["weight_hashes"]
    assert {"eigenshift", "torch", "transformers"} <= set(meta["versions"])
    loaded = load_intervention(folder, lm)
    assert isinstance(loaded, ScaleUnembeddingInput)
    assert torch.equal(loaded.tensors["scale"], edit.tensors["scale"])
    with edit.applied(lm):
        a = _logits(lm)
    with loaded.applied(lm):
        torch.testing.assert_close(_logits(lm), a, atol=0, rtol=0)

    other = make_lm("llama", seed=1)
    with pytest.raises(ArtifactError, match="fitted on 'tiny-llama'"):
        load_intervention(folder, other)
    with pytest.raises(ArtifactError, match="fit it again"), loaded.applied(other):
        pass
    edit.save(folder)  # overwriting an artifact is atomic and leaves no temporary folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edit"]


def test_bad_artifacts_are_refused(tmp_path):
    with pytest.raises(ArtifactError, match="not an intervention folder"):
        load_intervention(tmp_path)
    (tmp_path / "intervention.json").write_text("{broken")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_intervention(tmp_path)
    lm = make_lm("llama")
    folder = ScaleUnembeddingInput.fit(lm).save(tmp_path / "x")
    meta = json.loads((folder / "intervention.json").read_text())
    meta["method"] = "no-such-method"
    (folder / "intervention.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="unknown intervention method"):
        load_intervention(folder)
    meta["method"], meta["format_version"] = "identity", 99
    (folder / "intervention.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="upgrade"):
        load_intervention(folder)


def test_artifact_for_a_missing_module_is_refused():
    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.fit(lm)
    edit.meta.weight_hashes = {"no.such.module": "0"}
    with pytest.raises(ArtifactError, match="lacks"):
        edit.check_compatible(lm)


class HookOnly(Intervention):
    """A method with no affine form, defined without registering (nothing leaks into METHODS)."""

    method = "test-hook-only"
    config_class = IdentityConfig

    @classmethod
    def fit_inputs(cls, lm, config, inputs, progress):
        return cls({}, cls.new_meta(lm, {}, [lm.arch.unembedding]))

    def shapes(self, lm):
        return {}

    def edits(self, lm):
        return [Edit(Site(lm.arch.unembedding, "input"), lambda h: h)]


def test_register_refuses_a_second_class_under_a_taken_name():
    class Impostor(HookOnly):
        method = "identity"

    with pytest.raises(ValueError, match="registered twice"):
        register(Impostor)
    assert method_class("identity") is ScaleUnembeddingInput and "test-hook-only" not in METHODS


def test_unbakeable_methods_say_so_and_several_apply_at_once():
    lm = make_lm("llama")
    with pytest.raises(NotBakeableError, match="applied"):
        HookOnly.fit(lm).bake(lm)
    a = ScaleUnembeddingInput.from_scale(lm, _scale(lm.arch.hidden_size, 0))
    b = ScaleUnembeddingInput.from_scale(lm, _scale(lm.arch.hidden_size, 1))
    both = ScaleUnembeddingInput.from_scale(lm, a.tensors["scale"] * b.tensors["scale"])
    before = _logits(lm)
    with both.applied(lm):
        expected = _logits(lm)
    with applied_all([a, b, HookOnly.fit(lm)], lm):
        torch.testing.assert_close(_logits(lm), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_logits(lm), before, atol=0, rtol=0)
