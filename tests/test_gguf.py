"""GGUF out: the source GGUF copied byte for byte except the tensors an edit changes, a tied head
given its own output tensor, steering as a llama.cpp control vector; and, with llama-cpp-python,
llama.cpp's next tokens on the export agree with our baked model."""

from __future__ import annotations

import json
import re

import gguf
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_lm
from test_baselines import DATA, _neurons

from eigenshift.cli import cli
from eigenshift.core.errors import InputError, NotBakeableError
from eigenshift.export.gguf import LOGIT_BIAS_KEY, export_gguf
from eigenshift.interventions import AurA, EigenShift, MeanDifferenceSteering, ScaleUnembeddingInput
from eigenshift.locate import NeuronScores

MAP = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, 2)


def _as_gguf_source(lm, folder):
    """Write `lm`'s weights as a llama GGUF (Q8_0 matrices, F32 norms; tied: no output.weight)
    and record it as the file `lm` was converted from."""
    path = folder / "tiny.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(lm.arch.num_layers)
    writer.add_string("general.name", "tiny")
    for name, tensor in lm.model.state_dict().items():
        if name == "lm_head.weight" and lm.arch.tied:
            continue
        gname = MAP.get_name(name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            continue
        array = tensor.float().numpy()
        qtype = gguf.GGMLQuantizationType.F32 if array.ndim == 1 else gguf.GGMLQuantizationType.Q8_0
        data = gguf.quants.quantize(array, qtype)
        writer.add_tensor(gname, data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    from eigenshift.core.assets import sha256_file

    (folder / "eigenshift-source.json").write_text(json.dumps(
        {"gguf_file": str(path), "sha256": sha256_file(path), "dequantized": True}))  # fmt: skip
    lm.location = str(folder)
    return path


def _tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def test_aura_export_copies_every_untouched_tensor_byte_for_byte(tmp_path):
    lm = make_lm("llama")
    source = _as_gguf_source(lm, tmp_path)
    aura = AurA.fit(lm, neurons=_neurons(lm))
    out = export_gguf(lm, aura, tmp_path / "out" / "aura.gguf")
    before, after = _tensors(source), _tensors(out)
    assert set(after) == set(before)
    edited = {f"blk.{i}.ffn_down.weight" for i in range(lm.arch.num_layers)}
    for name, tensor in before.items():
        if name in edited:
            assert after[name].tensor_type == gguf.GGMLQuantizationType.F16
        else:
            assert after[name].tensor_type == tensor.tensor_type
            assert bytes(after[name].data) == bytes(tensor.data), name
    with aura.baked(lm):  # the edited tensor is the baked weight, in F16
        want = lm.module("model.layers.1.mlp.down_proj").weight.detach().numpy().copy()
    got = np.asarray(after["blk.1.ffn_down.weight"].data, np.float32)
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=1e-2)
    assert not np.allclose(want, gguf.quants.dequantize(before["blk.1.ffn_down.weight"].data,
                                                        gguf.GGMLQuantizationType.Q8_0),
                           atol=1e-3)  # the edit shows  # fmt: skip
    keys = gguf.GGUFReader(out).fields
    assert keys["eigenshift.method"].contents() == "aura"
    assert keys["general.name"].contents() == "tiny"


def test_a_tied_head_gets_its_own_output_tensor_and_a_shift_its_logit_bias(tmp_path):
    lm = make_lm("llama")  # tied
    assert lm.arch.tied
    source = _as_gguf_source(lm, tmp_path)
    edit = ScaleUnembeddingInput.from_scale(lm, torch.linspace(0.2, 1.5, lm.arch.hidden_size))
    out = export_gguf(lm, edit, tmp_path / "head.gguf", tensor_type="source")
    before, after = _tensors(source), _tensors(out)
    assert "output.weight" not in before and "output.weight" in after
    assert after["output.weight"].tensor_type == before["token_embd.weight"].tensor_type  # Q8_0
    assert bytes(after["token_embd.weight"].data) == bytes(before["token_embd.weight"].data)
    assert lm.arch.tied and lm.model.lm_head.weight is lm.model.model.embed_tokens.weight
    assert gguf.GGUFReader(out).get_field(LOGIT_BIAS_KEY) is None  # no shift: no bias


def test_steering_exports_as_a_control_vector(tmp_path):
    lm = make_lm("llama")
    _as_gguf_source(lm, tmp_path)
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=1, strength=2.0, progress=False)
    out = export_gguf(lm, steer, tmp_path / "steer.gguf")
    reader = gguf.GGUFReader(out)
    assert reader.get_field("general.architecture").contents() == "controlvector"
    assert reader.get_field("controlvector.model_hint").contents() == "llama"
    (tensor,) = reader.tensors
    assert tensor.name == "direction.1" and tensor.tensor_type == gguf.GGMLQuantizationType.F32
    np.testing.assert_allclose(np.asarray(tensor.data), 2.0 * steer.tensors["vector"].numpy(),
                               rtol=1e-6)  # fmt: skip
    first = MeanDifferenceSteering.fit(lm, data=DATA, layer=0, progress=False)
    with pytest.raises(NotBakeableError, match="first block"):
        export_gguf(lm, first, tmp_path / "first.gguf")


def test_sources_that_are_not_gguf_are_refused_in_one_line(tmp_path, tiny_folder):
    lm = make_lm("llama")
    with pytest.raises(InputError, match="not loaded from a GGUF"):
        export_gguf(lm, AurA.fit(lm, neurons=_neurons(lm)), tmp_path / "x.gguf")
    with pytest.raises(InputError, match=r"ending in \.gguf"):
        export_gguf(lm, AurA.fit(lm, neurons=_neurons(lm)), tmp_path / "x")
    folder = tmp_path / "aura"
    AurA.fit(lm, neurons=_neurons(lm)).save(folder)
    result = CliRunner().invoke(cli, ["export", "--model", tiny_folder, "--intervention",
                                       str(folder), "--format", "gguf", "--out",
                                       str(tmp_path / "y.gguf")])  # fmt: skip
    assert result.exit_code == 2 and "not loaded from a GGUF" in result.output
    assert len(result.output.strip().splitlines()) == 1


def _scaled_units(lm, module):
    """AurA on every output unit of `module` (each scaled by 0.2): an edit of that one weight."""
    width = lm.module(module).weight.shape[0]
    auroc = np.full(width, 0.9)
    return AurA.fit(lm, neurons=NeuronScores([module], [width], auroc, auroc.copy(),
                                             {"data_hash": "x", "model": lm.name}))  # fmt: skip


@pytest.mark.parametrize("proj", ["q_proj", "k_proj"])
def test_an_edit_of_llamas_permuted_query_or_key_is_refused(tmp_path, proj):
    """llama.cpp's converter permutes attn_q and attn_k of llama models: an edited tensor written
    unpermuted would be silently wrong, so the export refuses (and writes nothing)."""
    lm = make_lm("llama")
    _as_gguf_source(lm, tmp_path)
    module = f"model.layers.1.self_attn.{proj}"
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    out = tmp_path / "out" / "edit.gguf"
    with pytest.raises(NotBakeableError, match=rf"'{re.escape(module)}\.weight'.*permuted"):
        export_gguf(lm, _scaled_units(lm, module), out)
    assert not out.exists() and not list(out.parent.glob("*.gguf"))
    after = lm.model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)  # the bake was put back


def test_an_edit_of_the_value_projection_is_exported(tmp_path):
    """The same edit one tensor over (attn_v, stored as converted): written, the rest copied."""
    lm = make_lm("llama")
    source = _as_gguf_source(lm, tmp_path)
    edit = _scaled_units(lm, "model.layers.1.self_attn.v_proj")
    out = export_gguf(lm, edit, tmp_path / "out" / "v.gguf")
    before, after = _tensors(source), _tensors(out)
    assert after["blk.1.attn_v.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    for name in set(before) - {"blk.1.attn_v.weight"}:
        assert bytes(after[name].data) == bytes(before[name].data), name
    with edit.baked(lm):
        want = lm.module("model.layers.1.self_attn.v_proj").weight.detach().numpy().copy()
    np.testing.assert_allclose(np.asarray(after["blk.1.attn_v.weight"].data, np.float32), want,
                               atol=2e-3, rtol=1e-2)  # fmt: skip


def _centered(lm, k=4):
    """A centered EigenShift edit built by hand (orthonormal directions, a given clean mean):
    dampening towards the mean adds the constant logit shift W (mu V_k) V_k^T."""
    d = lm.arch.hidden_size
    generator = torch.Generator().manual_seed(0)
    v_k, _ = torch.linalg.qr(torch.randn(d, k, generator=generator))
    tensors = {"v_k": v_k.contiguous(), "indices": torch.arange(k),
               **{n: torch.ones(d) for n in ("singular_values", "deltas", "scores")},
               "clean_mean": torch.linspace(-1.0, 1.0, d)}  # fmt: skip
    params = {"recipe": "paper", "contrast": "first", "score": "delta", "dampen": "centered",
              "k": k, "alpha": 0.0}  # fmt: skip
    return EigenShift(tensors, EigenShift.new_meta(lm, params, [lm.arch.unembedding]))


def test_a_stale_logit_bias_file_is_removed_when_the_new_edit_has_none(tmp_path):
    lm = make_lm("llama")
    _as_gguf_source(lm, tmp_path)
    centered = _centered(lm)
    v_k, mu = centered.tensors["v_k"].double(), centered.tensors["clean_mean"].double()
    want = (lm.unembedding.weight.detach().double() @ ((mu @ v_k) @ v_k.T)).numpy()
    assert np.abs(want).max() > 1e-3  # a shift worth carrying
    out = export_gguf(lm, centered, tmp_path / "out" / "edit.gguf")
    bias_file = tmp_path / "out" / "edit.logit_bias.json"
    written = json.loads(bias_file.read_text())
    assert set(written) == {str(i) for i in range(len(want))}
    np.testing.assert_allclose([written[str(i)] for i in range(len(want))], want, rtol=1e-4,
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(gguf.GGUFReader(out).get_field(LOGIT_BIAS_KEY).contents(), want,
                               rtol=1e-4, atol=1e-6)  # fmt: skip
    assert lm.unembedding.bias is None and not lm.logit_bias_added  # the model put back
    other = export_gguf(lm, centered, tmp_path / "out" / "other.gguf")

    # The same path again with an edit that shifts nothing: no bias left to be applied with it.
    export_gguf(lm, AurA.fit(lm, neurons=_neurons(lm)), out)
    assert not bias_file.exists()
    assert gguf.GGUFReader(out).get_field(LOGIT_BIAS_KEY) is None
    assert gguf.GGUFReader(out).get_field("eigenshift.method").contents() == "aura"
    # Another export's bias file is its own: left alone.
    assert (tmp_path / "out" / "other.logit_bias.json").is_file() and other.is_file()


def test_llama_cpp_loads_without_extra_buffers_and_puts_its_defaults_back():
    """llama.cpp's AMX/repack buffers crash its decode on AMX CPUs: `Llama()` is made to load
    without them, through a wrapper of its default params that is removed even on failure."""
    from types import SimpleNamespace

    from eigenshift.engines.llamacpp import _model_params

    def default():
        return SimpleNamespace(use_extra_bufts=True, n_gpu_layers=0)

    fake = SimpleNamespace(llama_cpp=SimpleNamespace(llama_model_default_params=default))
    with pytest.raises(RuntimeError), _model_params(fake, extra_buffers=False):
        assert fake.llama_cpp.llama_model_default_params().use_extra_bufts is False
        raise RuntimeError("the load failed")
    assert fake.llama_cpp.llama_model_default_params is default
    with _model_params(fake, extra_buffers=True):
        assert fake.llama_cpp.llama_model_default_params().use_extra_bufts is True


def test_24_3_files_beside_a_gguf_export_that_eigenshift_did_not_write_are_never_replaced(
    tmp_path, tiny_folder
):
    import shutil

    from eigenshift import load_model

    model = tmp_path / "model"
    shutil.copytree(tiny_folder, model)
    lm = load_model(str(model))
    _as_gguf_source(lm, model)
    aura = tmp_path / "aura"
    AurA.fit(lm, neurons=_neurons(lm)).save(aura)
    out = tmp_path / "out" / "edit.gguf"
    out.parent.mkdir()

    def export(path=out):
        return CliRunner().invoke(cli, ["export", "--model", str(model), "--intervention",
                                        str(aura), "--format", "gguf", "--out", str(path)])

    # A user's own file named like the side file: neither replaced nor removed.
    theirs = out.with_name("edit.logit_bias.json")
    theirs.write_text('{"13": -100}\n')
    result = export()
    assert result.exit_code == 2 and "edit.logit_bias.json exists" in result.output
    assert theirs.read_text() == '{"13": -100}\n' and not out.exists()
    with pytest.raises(InputError, match="not the logit-bias file"):
        export_gguf(lm, _centered(lm), out)
    assert theirs.read_text() == '{"13": -100}\n' and not out.exists()
    theirs.unlink()
    # A .gguf eigenshift did not write (here the model's own source): refused.
    source = model / "tiny.gguf"
    before = source.read_bytes()
    result = export(source)
    assert result.exit_code == 2 and "not a GGUF eigenshift wrote" in result.output
    assert source.read_bytes() == before
    # Its own earlier export is replaced (it was refused as "a file"), and so is its side file.
    export_gguf(lm, _centered(lm), out)
    assert theirs.is_file()  # written by eigenshift this time, and recorded in the GGUF
    for _ in range(2):
        result = export()
        assert result.exit_code == 0, result.output
    assert not theirs.exists()  # the AurA edit has no bias: the centred edit's file is gone
    # A side file that holds what the GGUF's metadata holds is ours, however it is formatted
    # (exports from before the hash was recorded).
    export_gguf(lm, _centered(lm), out)
    theirs.write_text(json.dumps(json.loads(theirs.read_text()), indent=1))
    assert export().exit_code == 0 and not theirs.exists()
    assert gguf.GGUFReader(out).get_field("eigenshift.method").contents() == "aura"


def test_24_9_the_conversion_record_names_the_gguf_absolutely(tmp_path, monkeypatch):
    from eigenshift.core.assets import sha256_file
    from eigenshift.models.gguf import SOURCE_RECORD, converted_folder

    monkeypatch.setenv("EIGENSHIFT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "a").mkdir()
    gguf_file = tmp_path / "a" / "m.gguf"
    gguf_file.write_bytes(b"GGUF" + bytes(64))
    digest = sha256_file(gguf_file)
    cached = tmp_path / "cache" / "gguf" / f"m-{digest[:16]}"
    cached.mkdir(parents=True)  # converted earlier, as typed, from another working directory
    (cached / SOURCE_RECORD).write_text(json.dumps({"gguf_file": "m.gguf", "sha256": digest,
                                                    "dequantized": True}))  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert converted_folder(gguf_file.relative_to(tmp_path)) == cached
    record = json.loads((cached / SOURCE_RECORD).read_text())
    assert record["gguf_file"] == str(gguf_file.resolve())  # found from any directory
