"""Tiny random models built from configs (no files, no downloads), a tokenizer trained in memory."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# One fresh cache per test session (conversions happen once per run, never in the user's cache);
# EIGENSHIFT_TEST_CACHE names a folder to keep between runs instead.
if os.environ.get("EIGENSHIFT_TEST_CACHE"):
    os.environ["EIGENSHIFT_CACHE"] = os.environ["EIGENSHIFT_TEST_CACHE"]
else:
    import atexit
    import shutil
    import tempfile

    os.environ["EIGENSHIFT_CACHE"] = tempfile.mkdtemp(prefix="eigenshift-test-cache-")
    atexit.register(shutil.rmtree, os.environ["EIGENSHIFT_CACHE"], ignore_errors=True)

import functools

import pytest
import torch
import transformers as tf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from eigenshift.models import LanguageModel

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "you are a stupid idiot and nobody likes you",
    "a model of language predicts the next token from the ones before it",
    "thank you very much for the kind words, friend",
    "paris is the capital of france and has many museums",
] * 4


@functools.cache
def tiny_tokenizer() -> tf.PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


VOCAB = 300
D, FF, LAYERS, HEADS = 32, 64, 2, 4
COMMON = {"vocab_size": VOCAB, "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 1}


def _llama_like(cfg_cls, **extra):
    return cfg_cls(
        hidden_size=D,
        intermediate_size=FF,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        max_position_embeddings=128,
        **COMMON,
        **extra,
    )


CONFIGS = {
    "llama": lambda: (tf.LlamaForCausalLM, _llama_like(tf.LlamaConfig, tie_word_embeddings=True)),
    "mistral": lambda: (tf.MistralForCausalLM, _llama_like(tf.MistralConfig)),
    "qwen2": lambda: (tf.Qwen2ForCausalLM, _llama_like(tf.Qwen2Config)),
    "gemma": lambda: (tf.GemmaForCausalLM, _llama_like(tf.GemmaConfig, head_dim=8)),
    "gemma3_text": lambda: (
        tf.Gemma3ForCausalLM,
        _llama_like(tf.Gemma3TextConfig, head_dim=8, sliding_window=16),
    ),
    "gpt2": lambda: (
        tf.GPT2LMHeadModel,
        tf.GPT2Config(
            n_embd=D, n_layer=LAYERS, n_head=HEADS, n_inner=FF, n_positions=128, **COMMON
        ),
    ),
    "gpt_neox": lambda: (
        tf.GPTNeoXForCausalLM,
        tf.GPTNeoXConfig(
            hidden_size=D,
            intermediate_size=FF,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            max_position_embeddings=128,
            **COMMON,
        ),
    ),
    "opt": lambda: (
        tf.OPTForCausalLM,
        tf.OPTConfig(
            hidden_size=D,
            ffn_dim=FF,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            word_embed_proj_dim=D,
            max_position_embeddings=128,
            **COMMON,
        ),
    ),
}
FAMILY_NAMES = list(CONFIGS)


def tiny_bert_config(**extra) -> tf.BertConfig:
    """A BERT-shaped config: a layout we do not know as a causal LM, and a classifier base."""
    base = {
        "vocab_size": VOCAB,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
    }
    return tf.BertConfig(**{**base, **extra})


def make_hf_model(family: str = "llama", seed: int = 0, dtype=torch.float32):
    cls, config = CONFIGS[family]()
    torch.manual_seed(seed)
    model = cls(config).to(dtype)
    model.eval()
    return model


def make_lm(family: str = "llama", seed: int = 0, dtype=torch.float32) -> LanguageModel:
    return LanguageModel.wrap(
        make_hf_model(family, seed, dtype), tiny_tokenizer(), name=f"tiny-{family}"
    )


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> str:
    """The tiny llama saved as a model folder, for commands that load `--model FOLDER`."""
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    make_hf_model("llama").save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return str(folder)


@pytest.fixture
def tiny_llama() -> LanguageModel:
    return make_lm("llama")


@pytest.fixture(params=FAMILY_NAMES)
def family_lm(request) -> LanguageModel:
    return make_lm(request.param)


PROMPTS = [
    "the quick brown",
    "you are a",
    "a model of language predicts the next token",
    "thank",
    "paris is the capital of france and",
]


def extra(module: str, what: str):
    """An optional extra's module: `make test` installs every extra and sets
    EIGENSHIFT_TEST_CACHE, so there a missing one fails the run instead of skipping its tests."""
    if os.environ.get("EIGENSHIFT_TEST_CACHE"):
        return __import__(module)
    return pytest.importorskip(module, reason=f"{what}: `make test` installs it")


def fit_es(lm, scorer=None, **settings):
    """EigenShift's statistics from one mixed bag of settings, each going to the config that has
    it (the evidence's or the method's), as tests and the old single config wrote them."""
    import dataclasses

    from eigenshift.evidence import EvidenceConfig, fit_eigenshift
    from eigenshift.interventions import EigenShiftConfig

    names = {f.name for f in dataclasses.fields(EvidenceConfig)}
    evidence = EvidenceConfig(**{k: v for k, v in settings.items() if k in names})
    config = EigenShiftConfig(**{k: v for k, v in settings.items() if k not in names})
    return fit_eigenshift(lm, config, evidence, scorer=scorer, progress=False)
