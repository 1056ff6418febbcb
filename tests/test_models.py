from __future__ import annotations

import pytest
import torch
from conftest import FAMILY_NAMES, make_hf_model, make_lm, tiny_bert_config, tiny_tokenizer
from torch import nn

from eigenshift.core.errors import ModelLoadError, UnsupportedArchitectureError
from eigenshift.models import LanguageModel, SiteOverrides, detect_architecture, load_model
from eigenshift.models.loading import resolve_spec

EXPECTED = {
    "llama": ("model.layers", "mlp.down_proj", "model.norm", True),
    "mistral": ("model.layers", "mlp.down_proj", "model.norm", False),
    "qwen2": ("model.layers", "mlp.down_proj", "model.norm", False),
    "gemma": ("model.layers", "mlp.down_proj", "model.norm", True),
    "gemma3_text": ("model.layers", "mlp.down_proj", "model.norm", True),
    "gpt2": ("transformer.h", "mlp.c_proj", "transformer.ln_f", True),
    "gpt_neox": ("gpt_neox.layers", "mlp.dense_4h_to_h", "gpt_neox.final_layer_norm", False),
    "opt": ("model.decoder.layers", "fc2", "model.decoder.final_layer_norm", True),
}


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_each_family_names_its_sites(family):
    lm = make_lm(family)
    blocks, mlp, norm, tied = EXPECTED[family]
    arch = lm.arch
    assert (arch.blocks, arch.mlp_site, arch.final_norm, arch.tied) == (blocks, mlp, norm, tied)
    assert lm.unembedding is lm.model.get_output_embeddings()
    assert (arch.hidden_size, arch.vocab_size, arch.num_layers, arch.mlp_width) == (32, 300, 2, 64)
    # The MLP site's input really is the hidden-unit vector of that width.
    seen = []
    handle = lm.module(arch.mlp_site_names()[-1]).register_forward_pre_hook(
        lambda _m, a: seen.append(a[0].shape)
    )
    lm.model(**lm.encode(["the quick brown fox"]).model_inputs())
    handle.remove()
    assert seen and seen[0][-1] == 64


class Weird(nn.Module):
    """A causal-LM-shaped module of no known family."""

    def __init__(self):
        super().__init__()
        self.config = type("C", (), {"model_type": "weird"})()
        self.emb = nn.Embedding(10, 4)
        self.stack = nn.ModuleList([nn.ModuleDict({"ff": nn.Linear(8, 4)}) for _ in range(3)])
        self.head = nn.Linear(4, 10, bias=False)

    def get_output_embeddings(self):
        return self.head

    def get_input_embeddings(self):
        return self.emb


def test_unknown_architecture_error_names_what_is_missing_and_overrides_fix_it():
    with pytest.raises(UnsupportedArchitectureError) as err:
        detect_architecture(Weird())
    message = str(err.value)
    assert "weird" in message and "decoder blocks" in message and "--blocks" in message
    arch = detect_architecture(Weird(), SiteOverrides(blocks="stack", mlp_site="ff"))
    assert arch.unembedding == "head" and arch.num_layers == 3 and arch.mlp_width == 8
    assert arch.mlp_site_names() == ["stack.0.ff", "stack.1.ff", "stack.2.ff"]
    with pytest.raises(UnsupportedArchitectureError, match="MLP site"):
        detect_architecture(Weird(), SiteOverrides(blocks="stack", mlp_site="nope"))


def test_unknown_model_type_with_a_known_layout_is_recognised():
    model = make_hf_model("llama")
    model.config.model_type = "my-llama-fork"
    arch = detect_architecture(model)
    assert arch.blocks == "model.layers" and "unknown" in arch.family


def test_local_folder_loads_like_a_hub_id(tmp_path):
    """The hub code path (from_pretrained on a name) exercised through a local folder."""
    model = make_hf_model("gpt2")
    model.save_pretrained(tmp_path / "m")
    tiny_tokenizer().save_pretrained(tmp_path / "m")
    lm = load_model(str(tmp_path / "m"))
    assert lm.arch.family == "gpt2" and lm.arch.tied
    ids = lm.encode(["the quick brown fox"]).input_ids
    with torch.no_grad():
        assert torch.allclose(lm.model(ids).logits, model(ids).logits, atol=1e-6)


def test_spec_errors_are_clear(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_spec(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        resolve_spec(str(tmp_path / "missing.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"without config\.json"):
        resolve_spec(str(tmp_path / "empty"))
    assert resolve_spec("org/name").kind == "hub"
    assert resolve_spec("default").kind == "embedded"


def test_corrupt_gguf_is_refused(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        load_model(str(bad))
    truncated = tmp_path / "trunc.gguf"
    truncated.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 7)
    with pytest.raises(ModelLoadError, match="could not be read as a GGUF model"):
        load_model(str(truncated))


def test_hub_id_offline_fails_with_a_clear_error():
    with pytest.raises(ModelLoadError, match="could not read the config"):
        load_model("nobody-here/no-such-model")


def test_unsupported_architecture_folder(tmp_path):
    import transformers as tf

    tf.ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path / "vit"
    )
    with pytest.raises(UnsupportedArchitectureError, match="not a causal language model"):
        load_model(str(tmp_path / "vit"))

    # A causal LM of a layout we do not know: the error names what is missing; overrides fix it.
    tf.BertLMHeadModel(tiny_bert_config(is_decoder=True)).save_pretrained(tmp_path / "bert")
    tiny_tokenizer().save_pretrained(tmp_path / "bert")
    with pytest.raises(UnsupportedArchitectureError, match=r"decoder blocks.*--blocks"):
        load_model(str(tmp_path / "bert"))
    lm = load_model(
        str(tmp_path / "bert"),
        sites=SiteOverrides(blocks="bert.encoder.layer", mlp_site="output.dense"),
    )
    assert lm.arch.num_layers == 2 and lm.arch.mlp_width == 32


def test_weight_hash_changes_with_the_weights():
    lm = make_lm("mistral")
    before = lm.weight_hash("lm_head")
    assert before == lm.weight_hash("lm_head")
    with torch.no_grad():
        lm.unembedding.weight[0, 0] += 1.0
    assert lm.weight_hash("lm_head") != before


def test_untie_keeps_input_embeddings():
    lm = make_lm("llama")
    emb = lm.model.get_input_embeddings().weight
    saved = emb.detach().clone()
    lm.untie_unembedding()
    assert not lm.arch.tied
    with torch.no_grad():
        lm.unembedding.weight.mul_(0.5)
    assert torch.equal(emb, saved)


def test_wrap_gives_a_pad_token():
    import copy

    tok = copy.deepcopy(tiny_tokenizer())  # the cached tokenizer is shared: never mutate it
    tok.pad_token = None
    lm = LanguageModel.wrap(make_hf_model("gpt2"), tok)
    assert lm.tokenizer.pad_token_id is not None
