"""What the vLLM engine sends its worker, without vLLM: a stand-in worker (plain Python, speaking
the worker's JSON-lines protocol) records every request. An edit with a constant logit shift
(centered EigenShift) must send that shift as `logit_bias` on every generation request, and an
edit without one must send none; the probe asks for raw log-probabilities, without the bias."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch
from conftest import PROMPTS, make_lm

from eigenshift.engines.generation import SamplingConfig
from eigenshift.engines.vllm_engine import VLLMEngine
from eigenshift.interventions import EigenShift, ScaleUnembeddingInput

# Records each request with the folder it serves; answers a probe with the export's own saved
# log-probabilities (a faithful server) and every row with one token.
STAND_IN = """
import json, os, sys
from pathlib import Path
setup = json.loads(sys.stdin.readline())
print(json.dumps({"ready": 0.0}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    with open(os.environ["STAND_IN_REQUESTS"], "a") as log:
        log.write(json.dumps({"model": setup["model"], "request": request}) + "\\n")
    probe = None
    if request.get("probe"):
        probe = json.loads((Path(setup["model"]) / "eigenshift-probe.json").read_text())["saved"]
    outputs = [{"token_ids": [7]} for _ in request["rows"]]
    print(json.dumps({"outputs": outputs, "seconds": 0.0, "probe": probe}), flush=True)
"""


def _centered(lm, k=4, alpha=0.25):
    """A centered EigenShift edit built by hand: orthonormal directions V_k and a clean mean mu;
    dampening towards mu adds (1 - alpha) W (mu V_k) V_k^T to every logit."""
    d = lm.arch.hidden_size
    v_k, _ = torch.linalg.qr(torch.randn(d, k, generator=torch.Generator().manual_seed(0)))
    tensors = {"v_k": v_k.contiguous(), "indices": torch.arange(k),
               **{n: torch.ones(d) for n in ("singular_values", "deltas", "scores")},
               "clean_mean": torch.linspace(-1.0, 1.0, d)}  # fmt: skip
    params = {"recipe": "paper", "contrast": "first", "score": "delta", "dampen": "centered",
              "k": k, "alpha": alpha}  # fmt: skip
    return EigenShift(tensors, EigenShift.new_meta(lm, params, [lm.arch.unembedding]))


@pytest.fixture
def engine(tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"
    worker.write_text(STAND_IN)
    monkeypatch.setenv("STAND_IN_REQUESTS", str(tmp_path / "requests.jsonl"))
    made = VLLMEngine(python=Path(sys.executable), worker=worker, exports=tmp_path / "exports")
    yield made
    made.close()


def _requests(tmp_path) -> list[dict]:
    lines = (tmp_path / "requests.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_constant_logit_shift_goes_with_every_request(engine, tmp_path):
    lm = make_lm("llama")
    centered = _centered(lm)
    # The shift by hand, from the model's own head weight (before any edit).
    v_k, mu = centered.tensors["v_k"].double(), centered.tensors["clean_mean"].double()
    want = (1 - 0.25) * (lm.unembedding.weight.detach().double() @ ((mu @ v_k) @ v_k.T))
    assert want.abs().max() > 1e-3  # a shift worth carrying
    config = SamplingConfig(samples=2, max_new_tokens=3, seed=5)
    for chunk in (PROMPTS[:2], PROMPTS[2:4]):  # two chunks, one worker
        assert len(engine.generate(lm, centered, chunk, config)) == 2 * len(chunk)
    folder = engine.served(lm, centered).folder

    requests = _requests(tmp_path)
    assert {r["model"] for r in requests} == {str(folder)}
    probes = [r["request"] for r in requests if r["request"].get("probe")]
    rows = [r["request"] for r in requests if r["request"]["rows"]]
    assert len(probes) == 1 and not probes[0]["rows"]
    assert not probes[0].get("logit_bias")  # the probe reads raw log-probabilities
    assert len(rows) == 2 and [len(r["rows"]) for r in rows] == [4, 4]
    for request in rows:
        bias = request["logit_bias"]
        assert set(bias) == {str(i) for i in range(lm.arch.vocab_size)}
        np.testing.assert_allclose([bias[str(i)] for i in range(len(want))], want.numpy(),
                                   rtol=1e-4, atol=1e-6)  # fmt: skip
    # The shift travels only as the logit bias: the served weights have no head bias to add it
    # a second time, and our own model is as it was.
    weights = safetensors.torch.load_file(folder / "model.safetensors")
    assert not any(name.startswith("lm_head.") and name.endswith("bias") for name in weights)
    assert lm.unembedding.bias is None and not lm.logit_bias_added


def test_an_edit_without_a_shift_sends_no_logit_bias(engine, tmp_path):
    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.from_scale(lm, torch.linspace(0.5, 1.5, lm.arch.hidden_size))
    engine.generate(lm, edit, PROMPTS[:2], SamplingConfig(max_new_tokens=3))
    rows = [r["request"] for r in _requests(tmp_path) if r["request"]["rows"]]
    assert len(rows) == 1 and rows[0]["logit_bias"] is None
    assert not (engine.served(lm, edit).folder / "logit_bias.json").exists()
