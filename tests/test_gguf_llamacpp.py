"""The GGUF export in llama.cpp for real (llama-cpp-python, which `make test` builds): on the
default model, llama.cpp's next tokens and greedy continuations of the export agree with our
baked model, the steering control vector moves llama.cpp as our hook moves ours, and neither
agreement is what the unedited file already gives."""

from __future__ import annotations

import pytest
import torch
from conftest import extra

from eigenshift import load_model, load_prompts
from eigenshift.data import load_labelled
from eigenshift.engines.llamacpp import agreement, llama_cpp_model
from eigenshift.export.gguf import export_gguf, source_gguf
from eigenshift.interventions import EigenShift, MeanDifferenceSteering
from eigenshift.interventions.eigenshift.decomposition import right_singular

pytestmark = pytest.mark.integration
extra("llama_cpp", "llama-cpp-python")


@pytest.fixture(scope="module")
def lm():
    return load_model("default", dtype="float32")


@pytest.fixture(scope="module")
def prompts():
    return load_prompts("default", limit=24).texts


def _centered_eigenshift(lm, k=24):
    """EigenShift's default (centered) edit on the head's top directions: strong enough to
    change many next tokens, and a constant logit shift that travels as the logit bias."""
    _, v = right_singular(lm.unembedding.weight.detach())
    batch = lm.encode(load_prompts("default", limit=16).texts)
    with torch.inference_mode():
        states = lm.model(**batch.model_inputs(), output_hidden_states=True).hidden_states[-1]
    mean = states[batch.attention_mask.bool()].mean(0).double()
    d = lm.arch.hidden_size
    tensors = {"v_k": v[:, :k].float().contiguous(), "indices": torch.arange(k),
               **{n: torch.ones(d) for n in ("singular_values", "deltas", "scores")},
               "clean_mean": mean.float()}  # fmt: skip
    params = {"recipe": "paper", "contrast": "first", "score": "delta", "dampen": "centered",
              "k": k, "alpha": 0.0}  # fmt: skip
    return EigenShift(tensors, EigenShift.new_meta(lm, params, [lm.arch.unembedding]))


def test_llama_cpp_on_the_export_agrees_with_the_baked_model(lm, prompts, tmp_path):
    edit = _centered_eigenshift(lm)
    out = export_gguf(lm, edit, tmp_path / "eigenshift.gguf")
    with llama_cpp_model(out) as exported:
        assert exported.bias is not None  # the centered edit's logit shift came along
        with edit.baked(lm):
            got = agreement(lm, exported, prompts)
    with llama_cpp_model(source_gguf(lm)) as original, edit.baked(lm):
        unedited = agreement(lm, original, prompts)
    # llama.cpp computes the quantized weights with quantized activations; we compute their
    # de-quantized values in float32: a near tie can go the other way, nothing more.
    assert got.top1 >= 0.9 * got.prompts and got.greedy_tokens >= 0.6 * got.prompts * 20
    assert unedited.top1 < got.top1 - 0.2 * got.prompts  # the edit is what agrees


def test_the_control_vector_moves_llama_cpp_as_the_hook_moves_ours(lm, prompts, tmp_path):
    data = load_labelled("default", max_examples=200)
    steer = MeanDifferenceSteering.fit(lm, data=data, strength=6.0, progress=False)
    vector = export_gguf(lm, steer, tmp_path / "steer.gguf")
    model = source_gguf(lm)
    with llama_cpp_model(model, control_vector=vector) as steered, steer.applied(lm):
        got = agreement(lm, steered, prompts)
    with llama_cpp_model(model) as plain, steer.applied(lm):
        unsteered = agreement(lm, plain, prompts)
    assert got.top1 >= 0.85 * got.prompts
    assert unsteered.top1 < got.top1 - 0.15 * got.prompts
