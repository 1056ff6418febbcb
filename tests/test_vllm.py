"""The vLLM engine for real: vLLM's CPU build in its own environment (`make vllm`, which `make
test` runs first), serving the default model and eigenshift's exports. vLLM's process imports no
eigenshift (its environment does not have it), so what it serves is the export unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
import transformers as tf
from conftest import fit_es, tiny_tokenizer

from eigenshift import SamplingConfig, load_model, load_prompts
from eigenshift.core.errors import NotBakeableError
from eigenshift.engines import EngineConfig, HFEngine, open_engine
from eigenshift.engines.vllm_engine import VLLMEngine
from eigenshift.evaluation import EvalConfig, evaluate
from eigenshift.evidence.config import EvidenceRule
from eigenshift.interventions import ScaleUnembeddingInput

pytestmark = pytest.mark.integration

# Eager: vLLM's CPU graph compilation costs about two minutes per model folder.
VLLM = EngineConfig(engine="vllm", enforce_eager=True)
GREEDY = SamplingConfig(greedy=True, max_new_tokens=20)


@pytest.fixture(scope="module")
def default_lm():
    return load_model("default")


@pytest.fixture(scope="module")
def engine():
    with open_engine(VLLM) as opened:  # a missing environment fails here: run `make vllm`
        yield opened


@pytest.fixture(scope="module")
def centered(default_lm):
    """A small centered EigenShift fit: its constant logit shift travels as a logit bias."""
    fit = fit_es(default_lm, max_texts=300, rule=EvidenceRule(clean_budget=2000), resamples=20,
                 min_toxic=5)
    return fit.intervention()


def _same(a, b) -> int:
    return sum(x.token_ids == y.token_ids for x, y in zip(a, b, strict=True))


def test_vllm_greedy_equals_ours_on_the_original_and_the_export(default_lm, engine, centered):
    prompts = load_prompts("default", limit=32).texts
    hf = HFEngine()
    for edit in (None, centered):
        ours = hf.generate(default_lm, edit, prompts, GREEDY)
        served = engine.generate(default_lm, edit, prompts, GREEDY)
        # float32 on both sides; a near-tie may flip one continuation, not more
        assert _same(ours, served) >= len(prompts) - 1, edit
    folder = engine.served(default_lm, centered).folder
    assert (folder / "logit_bias.json").is_file()  # the edit's constant shift went as a bias
    original = hf.generate(default_lm, None, prompts, GREEDY)
    assert _same(original, ours) < len(prompts) - 4  # and the edit changes continuations


def test_the_metrics_pipeline_takes_vllm_continuations(default_lm, engine, centered, tmp_path):
    config = EvalConfig(max_prompts=8, clean_texts=8, bootstrap=50,
                        sampling=SamplingConfig(greedy=True, max_new_tokens=12))  # fmt: skip
    served = evaluate(default_lm, {"eigenshift": centered}, EvalConfig(**{**config.__dict__,
                      "engine": VLLM}), tmp_path / "vllm", progress=False,
                      engine=engine)  # fmt: skip
    ours = evaluate(default_lm, {"eigenshift": centered}, config, tmp_path / "hf", progress=False)
    for a, b in zip(served["methods"], ours["methods"], strict=True):
        assert a["n_continuations"] == b["n_continuations"] == 8
        assert a["expected_max_toxicity"] == pytest.approx(b["expected_max_toxicity"], abs=0.05)
        assert a["perplexity"] == pytest.approx(b["perplexity"])  # computed by our model


def test_a_family_vllm_ties_is_refused_not_silently_wrong(tmp_path):
    """vLLM computes Gemma-2's logits from its input embeddings: 0.32 refuses a separate
    lm_head, earlier versions dropped it without a word (the probe's case, tested with a
    stand-in in test_engines.py). Either way the user gets one line naming the hf engine."""
    config = tf.Gemma2Config(vocab_size=300, hidden_size=128, intermediate_size=256,
                             num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                             head_dim=64, max_position_embeddings=128, pad_token_id=0,
                             eos_token_id=1, bos_token_id=1)  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path / "tiny-gemma2"
    tf.Gemma2ForCausalLM(config).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    lm = load_model(str(folder))
    edit = ScaleUnembeddingInput.fit(lm, scale=0.3)
    prompts = ["the quick brown", "you are a"]
    with open_engine(VLLM) as tied:
        tied.generate(lm, None, prompts, GREEDY)  # the original serves
        with pytest.raises(NotBakeableError, match=r"ties this gemma2 .*--engine hf"):
            tied.generate(lm, edit, prompts, GREEDY)


def test_the_vllm_environment_has_no_eigenshift():
    python = VLLMEngine.find(VLLM).python
    found = subprocess.run([str(python), "-c", "import importlib.util, json; print(json.dumps("
                            "[importlib.util.find_spec(m) is not None for m in "
                            "('vllm', 'eigenshift')]))"], capture_output=True, text=True,
                           check=True)  # fmt: skip
    assert json.loads(found.stdout) == [True, False]
    assert Path(python).is_file()
