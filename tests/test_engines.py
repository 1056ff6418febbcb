"""The vLLM engine's side of its protocol with the worker: the request it writes (prompts
tokenized as our loop does, one seed per row), what it makes of the answer (stop tokens dropped,
text decoded by our tokenizer, (prompt, sample) order), and one line when vLLM fails. The worker
itself runs in vLLM's environment (`make vllm`), which these tests do not need."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import PROMPTS, make_lm

from eigenshift.engines.vllm_engine import VLLMEngine
from eigenshift.errors import InputError
from eigenshift.generation import SamplingConfig, row_seed

# Answers each row with its seed folded into a token id, then the stop token: what the engine
# must turn into continuations.
STAND_IN = '''
import json, sys
request = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for row in request["rows"]:
        ids = row["prompt_token_ids"][-2:] + [5 + row["seed"] % 50, request["stop"]]
        f.write(json.dumps({"token_ids": ids, "text": "ignored"}) + "\\n")
    f.write(json.dumps({"seconds": 0.5, "sampling": request["sampling"]}) + "\\n")
'''


def test_the_engine_builds_rows_and_reads_continuations(tmp_path):
    lm = make_lm("llama")
    stop = lm.tokenizer.eos_token_id
    worker = tmp_path / "worker.py"
    worker.write_text(STAND_IN.replace('request["stop"]', str(stop)))
    engine = VLLMEngine(python=Path(sys.executable), worker=worker)
    config = SamplingConfig(samples=2, max_new_tokens=4, seed=7)
    gens = engine.generate(lm, "folder", PROMPTS[:3], config, prompt_ids=[10, 11, 12])
    assert [(g.prompt_index, g.sample_index) for g in gens] == [
        (p, s) for p in (10, 11, 12) for s in (0, 1)]  # fmt: skip
    for g in gens:
        prompt_ids = lm.encode([g.prompt]).input_ids[0].tolist()
        seed = row_seed(7, g.prompt_index, g.sample_index)
        assert g.token_ids == [*prompt_ids[-2:], 5 + seed % 50]  # the stop token dropped
        assert g.text == lm.tokenizer.decode(g.token_ids, skip_special_tokens=True)
    assert engine.seconds == 0.5


def test_a_failing_vllm_is_one_line(tmp_path):
    lm = make_lm("llama")
    worker = tmp_path / "worker.py"
    worker.write_text("import sys\nsys.stderr.write('noise\\nRuntimeError: no CPU backend\\n')\n"
                      "sys.exit(3)\n")  # fmt: skip
    engine = VLLMEngine(python=Path(sys.executable), worker=worker)
    with pytest.raises(InputError, match=r"vLLM failed on folder: RuntimeError: no CPU backend "
                                         r"\(exit 3\); its log: "):  # fmt: skip
        engine.generate(lm, "folder", PROMPTS[:1], SamplingConfig(max_new_tokens=2))
    with pytest.raises(InputError, match="make vllm"):
        VLLMEngine.find(tmp_path / "missing" / "python")
