"""The prompting baseline: its instruction reaches every prompt the model continues, the clean
text's perplexity is read after it with exactly the tokens scored that are scored without it,
it saves and loads, changes no weight, and refuses to be baked or exported."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from conftest import make_lm
from test_baselines import DATA, _logits
from test_evaluation import SMALL
from tokenizers.processors import TemplateProcessing

from eigenshift.core.errors import InputError, NotBakeableError
from eigenshift.engines.config import SamplingConfig
from eigenshift.engines.generation import prompt_limit
from eigenshift.engines.hf import HFEngine
from eigenshift.evaluation import EvalConfig, evaluate
from eigenshift.evaluation.collect import prefixed
from eigenshift.evaluation.perplexity import after_prefix, shared_perplexities
from eigenshift.export.gguf import export_control_vector, export_gguf
from eigenshift.export.hf import export_model
from eigenshift.interventions import MeanDifferenceSteering, Prompting, Stack, load_intervention


def _nll_after(lm, head: list[int], body: list[int], first_scored: int) -> float:
    ids = head + body
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(torch.tensor([ids])).logits[0].double(), -1)
    return -float(np.mean([float(logp[t - 1, ids[t]]) for t in range(first_scored, len(ids))]))


@pytest.mark.parametrize("bos", [False, True])
def test_perplexity_is_read_after_the_instruction_on_the_same_tokens(bos):
    lm = make_lm("llama")
    if bos:  # a tokenizer that starts every text with a beginning-of-sequence token
        tokenizer = copy.deepcopy(lm.tokenizer)  # the tiny one is shared by every test
        tokenizer.bos_token = "<eos>"
        tokenizer._tokenizer.post_processor = TemplateProcessing(
            single="<eos> $A", special_tokens=[("<eos>", tokenizer.bos_token_id)])
        lm.tokenizer = tokenizer
    iv = Prompting.fit(lm, instruction="you are kind", separator=" ")
    texts = ["the quick brown fox jumps", "thank you", "paris is the capital of france"]
    enc = [list(lm.tokenizer(t)["input_ids"]) for t in texts]
    head = list(lm.tokenizer(iv.prefix)["input_ids"])
    assert (head[0] == lm.tokenizer.bos_token_id) == bos and (enc[0][0] == head[0]) == bos
    sequences, starts = after_prefix(lm, iv.prefix, enc)
    for ids, seq, start in zip(enc, sequences, starts, strict=True):
        assert len(seq) - start == len(ids) - 1  # the tokens scored without a prefix
        assert seq[start:] == ids[1:] and seq[: len(head)] == head
    got = dict((name, ppl) for name, ppl, _ in shared_perplexities(
        lm, texts, [("original", None), ("prompt", iv)], batch_size=2))  # fmt: skip
    for i, (ids, start) in enumerate(zip(enc, starts, strict=True)):
        body = ids[1:] if bos else ids
        want = _nll_after(lm, head, body, start)
        assert np.log(got["prompt"][i]) == pytest.approx(want, rel=1e-5)
    assert not np.allclose(got["prompt"], got["original"])


class Recording(HFEngine):
    """Our loop, keeping every prompt text it was asked to continue."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def generate(self, lm, intervention, prompts, config, **kwargs):
        self.seen += list(prompts)
        return super().generate(lm, intervention, prompts, config, **kwargs)


def test_the_instruction_is_before_every_generated_prompt_and_nothing_else_changes(tmp_path):
    lm = make_lm("llama")
    before = _logits(lm)
    iv = Prompting.fit(lm, instruction="be kind.")
    iv.save(tmp_path / "p")
    loaded = load_intervention(tmp_path / "p", lm)
    assert isinstance(loaded, Prompting) and loaded.prefix == "be kind.\n\n"
    assert loaded.digest() == iv.digest()
    with loaded.applied(lm):
        assert torch.equal(_logits(lm), before)
    engine = Recording()
    evaluate(lm, {"prompt": loaded}, EvalConfig(**SMALL), tmp_path / "run", progress=False,
             engine=engine)  # fmt: skip
    rows = [json.loads(x) for x in (tmp_path / "run" / "continuations.jsonl").read_text()
            .splitlines()]  # fmt: skip
    original = {r["prompt_index"]: r["prompt"] for r in rows if r["method"] == "original"}
    prompted = [r for r in rows if r["method"] == "prompt"]
    assert len(prompted) == 12
    # the model read the instruction; the rows (and the continuation NLL) keep the user's prompt
    assert sorted(engine.seen) == sorted([*original.values(),
                                          *("be kind.\n\n" + p for p in original.values())])
    assert all(r["prompt"] == original[r["prompt_index"]] for r in prompted)


def test_a_long_prompt_loses_its_start_not_the_instruction():
    lm = make_lm("llama")
    iv = Prompting.fit(lm, instruction="be kind.")
    config = SamplingConfig(max_prompt_tokens=24)
    long = " ".join(["the quick brown fox"] * 10)
    read, bare = prefixed(lm, iv, [long, "thank"], config)
    assert read[0].startswith("be kind.\n\n") and read[1] == "be kind.\n\nthank"
    assert long.endswith(bare[0]) and len(bare[0]) < len(long)
    assert len(lm.tokenizer(read[0])["input_ids"]) <= prompt_limit(lm, config)
    assert prefixed(lm, None, [long], config) == ([long], [long])


def test_a_prompt_is_not_a_weight_and_is_refused_where_weights_are_written(tmp_path):
    lm = make_lm("llama")
    iv = Prompting.fit(lm)
    with pytest.raises(NotBakeableError, match="places text before every prompt"):
        iv.bake(lm)
    with pytest.raises(NotBakeableError, match="places text before every prompt"):
        export_model(lm, iv, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, progress=False)
    both = Stack.fit(lm, members=[iv, steer])  # a control vector would drop the instruction
    for export in (export_gguf, export_control_vector):
        with pytest.raises(NotBakeableError, match="'stack' places text before every prompt"):
            export(lm, both, tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(InputError, match="instruction must not be empty"):
        Prompting.fit(lm, instruction="  ")


def test_what_weights_can_hold_of_a_prompting_method_or_a_stack():
    lm = make_lm("llama")
    iv = Prompting.fit(lm)
    steer = MeanDifferenceSteering.fit(lm, data=DATA, layer=-1, progress=False)
    assert iv.weights_only() is None and steer.weights_only() is steer
    assert Stack.fit(lm, members=[iv, iv]).weights_only() is None
    kept = Stack.fit(lm, members=[iv, steer]).weights_only()
    assert kept is not None and kept.method == "steer" and kept.prefix == ""
    both = Stack.fit(lm, members=[steer, iv, steer]).weights_only()
    assert both is not None and [m.method for m in both.members()] == ["steer", "steer"]
