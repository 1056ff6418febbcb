"""The engines behind one interface: the hf engine (hooks), and the vLLM engine's side of its
protocol with its worker (prompts tokenized as our loop does, one seed per row, stop tokens
dropped, progress, one line when vLLM fails), its export cache, refusals and the probe that
catches a served model that is not the edited one. The worker itself runs in vLLM's environment
(`make vllm`): here a stand-in speaks its protocol; test_vllm.py runs the real one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import PROMPTS, make_lm

from eigenshift.cli import cli
from eigenshift.core.errors import EngineError, InputError, NotBakeableError
from eigenshift.data import LabelledTexts
from eigenshift.engines import EngineConfig, HFEngine, open_engine
from eigenshift.engines.generation import SamplingConfig, generate, row_seed
from eigenshift.engines.vllm_engine import PROBE_FILE, VLLMEngine, check_probe
from eigenshift.evaluation import EvalConfig, evaluate
from eigenshift.interventions import MeanDifferenceSteering, ScaleUnembeddingInput

# Speaks the worker's protocol: each row answers its last two prompt tokens, its seed folded into
# a token id, then the first stop token; a probe is answered with the probe file's saved
# log-probabilities, shifted by SHIFT (0: a faithful server).
STAND_IN = '''
import json, sys, os
from pathlib import Path
SHIFT = float(os.environ.get("STAND_IN_SHIFT", "0"))
setup = json.loads(sys.stdin.readline())
print(json.dumps({"ready": 0.1}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    probe = None
    if request.get("probe"):
        saved = json.loads((Path(setup["model"]) / "eigenshift-probe.json").read_text())
        key = os.environ.get("STAND_IN_PROBE", "saved")
        probe = [{t: v + SHIFT for t, v in row.items()} for row in saved[key]]
    outputs = []
    stop = (request["sampling"].get("stop_token_ids") or [0])[0]
    for n, row in enumerate(request["rows"]):
        ids = row["prompt_token_ids"][-2:] + [5 + row["seed"] % 50, stop]
        outputs.append({"token_ids": ids})
        print(json.dumps({"progress": n + 1}), flush=True)
    with open(os.environ.get("STAND_IN_LOG", os.devnull), "a") as log:
        log.write(json.dumps({"setup": setup, "request": request}) + "\\n")
    print(json.dumps({"outputs": outputs, "seconds": 0.5, "probe": probe}), flush=True)
'''


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"
    worker.write_text(STAND_IN)
    monkeypatch.setenv("STAND_IN_LOG", str(tmp_path / "requests.jsonl"))

    def make(**config) -> VLLMEngine:
        return VLLMEngine(python=Path(sys.executable), config=EngineConfig(engine="vllm", **config),
                          worker=worker, exports=tmp_path / "exports")  # fmt: skip

    return make


def _requests(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]


def test_the_engine_builds_rows_and_reads_continuations(stand_in, tmp_path):
    lm = make_lm("llama")
    engine = stand_in(tensor_parallel_size=2, engine_arg=("kv_cache_dtype=fp8", "swap_space=4"))
    config = SamplingConfig(samples=2, max_new_tokens=4, seed=7)
    moved: list[int] = []
    try:
        gens = engine.generate(lm, None, PROMPTS[:3], config, prompt_ids=[10, 11, 12],
                               advance=moved.append)  # fmt: skip
    finally:
        engine.close()
    assert [(g.prompt_index, g.sample_index) for g in gens] == [
        (p, s) for p in (10, 11, 12) for s in (0, 1)]  # fmt: skip
    for g in gens:
        prompt_ids = lm.encode([g.prompt]).input_ids[0].tolist()
        seed = row_seed(7, g.prompt_index, g.sample_index)
        assert g.token_ids == [*prompt_ids[-2:], 5 + seed % 50]  # the stop token dropped
        assert g.text == lm.tokenizer.decode(g.token_ids, skip_special_tokens=True)
    assert engine.seconds == 0.5 and sum(moved) == 6  # every row reported as it finished
    (record,) = _requests(tmp_path)
    args = record["setup"]["engine_args"]
    assert args["tensor_parallel_size"] == 2 and args["kv_cache_dtype"] == "fp8"
    assert args["swap_space"] == 4 and args["dtype"] == "float32"  # the model's own dtype
    assert record["request"]["sampling"]["stop_token_ids"] == [lm.tokenizer.eos_token_id]


def test_one_worker_serves_every_chunk_of_a_folder(stand_in, tmp_path):
    lm = make_lm("llama")
    engine = stand_in()
    config = SamplingConfig(max_new_tokens=3)
    with open_engine(given=engine) as shared:
        for chunk in (PROMPTS[:2], PROMPTS[2:]):
            shared.generate(lm, None, chunk, config)
        first = engine._process
        assert first is not None and first.process.poll() is None  # still serving
    engine.close()
    assert first.process.poll() == 0  # stdin closed: the worker exits
    assert len(_requests(tmp_path)) == 2


def test_a_failing_vllm_is_one_line(tmp_path):
    lm = make_lm("llama")
    worker = tmp_path / "worker.py"
    worker.write_text("import sys\nsys.stdin.readline()\n"
                      "sys.stderr.write('noise\\nRuntimeError: no CPU backend\\n')\n"
                      "sys.exit(3)\n")  # fmt: skip
    engine = VLLMEngine(python=Path(sys.executable), worker=worker)
    with pytest.raises(EngineError, match=r"vLLM failed on .*: RuntimeError: no CPU backend "
                                          r"\(exit 3\); its log: "):  # fmt: skip
        engine.generate(lm, None, PROMPTS[:1], SamplingConfig(max_new_tokens=2))
    with pytest.raises(InputError, match="make vllm"):
        VLLMEngine.find(EngineConfig(engine="vllm", vllm_python=str(tmp_path / "no" / "python")))


def test_engine_arguments_are_checked_when_given():
    with pytest.raises(InputError, match="KEY=VALUE"):
        EngineConfig(engine="vllm", engine_arg=("no-equals-sign",))
    config = EngineConfig(engine="vllm", max_model_len=256, engine_arg=("quantization=fp8",))
    assert config.vllm_args() == {"max_model_len": 256, "quantization": "fp8"}
    assert EngineConfig().sampler != config.sampler  # a run never mixes two engines' samples


def test_an_edit_is_exported_once_and_checked_by_its_probe(stand_in, tmp_path, monkeypatch):
    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.fit(lm, scale=0.5)
    engine = stand_in()
    before = lm.unembedding.weight.detach().clone()
    gens = engine.generate(lm, edit, PROMPTS[:2], SamplingConfig(max_new_tokens=3))
    assert len(gens) == 2
    served = engine.served(lm, edit)
    assert (served.folder / PROBE_FILE).is_file() and served.folder.parent == tmp_path / "exports"
    assert lm.arch.tied and torch.equal(lm.unembedding.weight, before)  # the model put back
    requests = _requests(tmp_path)
    assert requests[0]["request"]["probe"] and not requests[1]["request"].get("probe")
    engine.close()
    stamp = (served.folder / "model.safetensors").stat().st_mtime_ns
    again = stand_in()  # another run: the cached export is reused, not written again
    again.generate(lm, edit, PROMPTS[:1], SamplingConfig(max_new_tokens=3))
    again.close()
    assert (served.folder / "model.safetensors").stat().st_mtime_ns == stamp

    # A server that answers with the unedited model's log-probabilities (a family vLLM ties by
    # architecture) is refused, naming the hf engine.
    monkeypatch.setenv("STAND_IN_PROBE", "original")
    tied = stand_in()
    with pytest.raises(NotBakeableError, match=r"serves the unedited unembedding.*--engine hf"):
        tied.generate(lm, edit, PROMPTS[:1], SamplingConfig(max_new_tokens=3))
    tied.close()
    monkeypatch.setenv("STAND_IN_PROBE", "saved")
    monkeypatch.setenv("STAND_IN_SHIFT", "3")
    wrong = stand_in()
    with pytest.raises(EngineError, match="differ from the saved weights"):
        wrong.generate(lm, edit, PROMPTS[:1], SamplingConfig(max_new_tokens=3))
    wrong.close()


def test_check_probe_tolerates_rounding_only():
    lm = make_lm("llama")
    probe = {"saved": [{"5": -1.0, "6": -2.0}], "original": [{"5": -1.5, "6": -1.8}]}
    check_probe(lm, probe, [{"5": -1.001, "6": -2.002}], Path("x"), "m")
    with pytest.raises(NotBakeableError):
        check_probe(lm, probe, [{"5": -1.5, "6": -1.8}], Path("x"), "m")
    half = make_lm("llama", dtype=torch.bfloat16)
    check_probe(half, probe, [{"5": -1.1, "6": -2.1}], Path("x"), "m")  # bf16 rounding
    check_probe(lm, probe, [{"5": -1.1, "6": -2.1}], Path("x"), "m", "bfloat16")  # vLLM's bf16
    with pytest.raises(EngineError):
        check_probe(lm, probe, [{"5": -1.1, "6": -2.1}], Path("x"), "m", "float32")


def test_an_unbakeable_edit_is_refused_before_any_generation(stand_in, tmp_path):
    lm = make_lm("qwen2")  # its blocks have no bias for a steering vector to fold into (a
    steer = MeanDifferenceSteering.fit(lm, data=_data(), progress=False)  # Llama's can: mlp_bias
    engine = stand_in()
    with pytest.raises(NotBakeableError, match="--engine hf"):
        evaluate(lm, [steer], EvalConfig(prompts=_prompts(tmp_path), max_prompts=2,
                                         judge=None, scorer="profanity", clean_texts=2,
                                         engine=EngineConfig(engine="vllm")),
                 tmp_path / "run", progress=False, engine=engine)  # fmt: skip
    assert engine._process is None  # vLLM never started
    assert not (tmp_path / "requests.jsonl").exists()


def test_vllm_continuations_flow_into_the_same_metrics(stand_in, tmp_path):
    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.fit(lm, scale=0.5)
    config = EvalConfig(prompts=_prompts(tmp_path), max_prompts=3, judge=None, scorer="profanity",
                        clean_texts=2, sampling=SamplingConfig(samples=2, max_new_tokens=3),
                        engine=EngineConfig(engine="vllm"))  # fmt: skip
    engine = stand_in()
    metrics = evaluate(lm, [edit], config, tmp_path / "run", progress=False, engine=engine)
    engine.close()
    assert [r["method"] for r in metrics["methods"]] == ["original", "identity"]
    assert all(r["n_continuations"] == 6 for r in metrics["methods"])
    assert metrics["config"]["engine"]["engine"] == "vllm"
    # the same folder resumed with the other engine is refused, not mixed
    hf = EvalConfig(**{**config.__dict__, "engine": EngineConfig()})
    with pytest.raises(InputError, match="sampler"):
        evaluate(lm, [edit], hf, tmp_path / "run", progress=False)


def test_the_hf_engine_is_the_hooked_loop():
    lm = make_lm("llama")
    edit = ScaleUnembeddingInput.fit(lm, scale=0.5)
    config = SamplingConfig(max_new_tokens=4, samples=2, seed=3)
    with edit.applied(lm):
        expected = generate(lm, PROMPTS[:2], config, progress=False)
    got = HFEngine().generate(lm, edit, PROMPTS[:2], config)
    assert [g.token_ids for g in got] == [g.token_ids for g in expected]


def test_the_cli_refuses_a_missing_vllm_in_one_line(tiny_folder, tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", "--model", tiny_folder, "--engine", "vllm",
                                      "--vllm-python", str(tmp_path / "none"), "--out",
                                      str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 2
    assert "make vllm" in result.output and "Traceback" not in result.output


def _prompts(tmp_path) -> str:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": {"text": p}}) + "\n" for p in PROMPTS))
    return str(path)


def _data():
    texts = ["you are an idiot", "thank you so much", "shut up stupid", "have a nice day"] * 3
    return LabelledTexts(texts, np.array([1, 0, 1, 0] * 3), "test")
