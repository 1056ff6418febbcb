"""Chat templates: the prompt as the user's turn or as the start of the assistant's reply, the
same tokens in generation, in continuation NLL and in vLLM's requests, recorded in the run."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from conftest import make_hf_model, tiny_tokenizer
from test_evaluation import SMALL

from eigenshift.core.errors import InputError
from eigenshift.engines.generation import SamplingConfig, generate, prompt_token_ids
from eigenshift.evaluation import EvalConfig, evaluate
from eigenshift.models import LanguageModel

TEMPLATE = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")  # fmt: skip
STRICT = ("<sys>{% if messages[0].role != 'system' %}be nice{% endif %}</sys>" + TEMPLATE)


def _chat_lm(template=TEMPLATE) -> LanguageModel:
    tok = copy.deepcopy(tiny_tokenizer())
    tok.chat_template = template
    return LanguageModel.wrap(make_hf_model("llama"), tok, name="tiny-chat")


def _ids(lm, text):
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_the_prompt_goes_where_the_setting_says():
    lm = _chat_lm()
    user = SamplingConfig(chat_template="user")
    assistant = SamplingConfig(chat_template="assistant")
    assert prompt_token_ids(lm, ["hi there"], user) == [
        _ids(lm, "<user>hi there</user><assistant>")]
    assert prompt_token_ids(lm, ["hi there"], assistant) == [
        _ids(lm, "<user></user><assistant>hi there")]
    raw = prompt_token_ids(lm, ["hi there"], SamplingConfig())
    assert raw == [lm.tokenizer("hi there")["input_ids"]]
    strict = _chat_lm(STRICT)  # a template's own system prompt stays
    assert prompt_token_ids(strict, ["go"], assistant) == [
        _ids(strict, "<sys>be nice</sys><user></user><assistant>go")]


def test_generation_reads_the_templated_tokens():
    lm = _chat_lm()
    config = SamplingConfig(chat_template="user", greedy=True, max_new_tokens=6)
    templated = generate(lm, ["you are a"], config, progress=False)[0]
    plain = generate(lm, ["<user>you are a</user><assistant>"],
                     replace(config, chat_template="none"), progress=False)[0]  # fmt: skip
    assert templated.token_ids == plain.token_ids
    assert templated.prompt == "you are a"  # what is scored and shown stays the prompt


def test_a_model_without_a_template_is_refused_in_one_line():
    lm = LanguageModel.wrap(make_hf_model("llama"), tiny_tokenizer(), name="tiny")
    with pytest.raises(InputError, match="no chat template"):
        generate(lm, ["hi"], SamplingConfig(chat_template="user"), progress=False)


def test_the_run_records_the_template_and_refuses_to_mix(tmp_path):
    lm = _chat_lm()
    config = EvalConfig(**{**SMALL, "sampling": replace(SMALL["sampling"], chat_template="user")})
    evaluate(lm, {}, config, tmp_path / "run", progress=False)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["settings"]["chat_template"] == "user"
    with pytest.raises(InputError, match="chat_template"):
        evaluate(lm, {}, EvalConfig(**SMALL), tmp_path / "run", progress=False)
