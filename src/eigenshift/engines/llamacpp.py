"""Running an exported GGUF in llama.cpp (through llama-cpp-python) on token ids we give it, so
its next-token choices can be compared with the model eigenshift edited.

The logit bias an export carries (`eigenshift.logit_bias`) is added to llama.cpp's logits, as a
server adds a request's `logit_bias`; a control vector is read as llama.cpp's own loader reads
it (`direction.N` acts on block N's output) and set on the context with `llama_set_adapter_cvec`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import gguf
import numpy as np
import torch

from ..core.errors import InputError
from ..export.gguf import LOGIT_BIAS_KEY
from ..models import LanguageModel
from ..models.options import checked_logit_bias
from .generation import SamplingConfig, eos_ids, generate


def _llama_cpp() -> ModuleType:
    try:
        import llama_cpp
    except ImportError:
        raise InputError("llama-cpp-python is not installed: pip install 'eigenshift[gguf]' "
                         "(it builds llama.cpp, which needs a C++ compiler and cmake)") from None
    return llama_cpp


def logit_bias_of(path: Path, vocab: int) -> np.ndarray | None:
    """The logit bias an export carries in its metadata, checked like every other copy."""
    field = gguf.GGUFReader(path).get_field(LOGIT_BIAS_KEY)
    if field is None:
        return None
    values = field.contents()
    where = f"{path} {LOGIT_BIAS_KEY}"
    if not isinstance(values, list) or len(values) != vocab:
        raise InputError(f"{where}: not one bias per token of the model's {vocab}; export the "
                         "model again")  # fmt: skip
    bias = checked_logit_bias({str(i): v for i, v in enumerate(values)}, vocab, where)
    return np.asarray(list(bias.values()), dtype=np.float32)


def control_vector_data(path: Path) -> tuple[np.ndarray, int]:
    """(data, n_embd) as llama.cpp's `common_control_vector_load` builds them: block N's vector
    at offset (N - 1) * n_embd."""
    reader = gguf.GGUFReader(path)
    vectors = {int(t.name.split(".", 1)[1]): np.asarray(t.data, np.float32)
               for t in reader.tensors if t.name.startswith("direction.")}  # fmt: skip
    if not vectors or min(vectors) < 1:
        raise InputError(f"{path} is not a llama.cpp control vector (direction.N, N >= 1)")
    n_embd = len(next(iter(vectors.values())))
    data = np.zeros(n_embd * max(vectors), np.float32)
    for layer, vector in vectors.items():
        data[n_embd * (layer - 1) : n_embd * layer] += vector
    return data, n_embd


@contextlib.contextmanager
def _model_params(llama_cpp: ModuleType, extra_buffers: bool) -> Iterator[None]:
    """`Llama()` has no switch for `use_extra_bufts`: its default model params are wrapped while
    it loads, and always put back."""
    module = llama_cpp.llama_cpp
    default = module.llama_model_default_params

    def params() -> Any:
        value = default()
        value.use_extra_bufts = extra_buffers
        return value

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = default


class LlamaCpp:
    """One llama.cpp context on a GGUF model, optionally with a control vector set."""

    def __init__(
        self, model: Path, *, control_vector: Path | None = None, n_ctx: int = 512,
        threads: int | None = None, extra_buffers: bool = False,
    ) -> None:  # fmt: skip
        llama_cpp = _llama_cpp()
        with _model_params(llama_cpp, extra_buffers):
            self.llm = llama_cpp.Llama(model_path=str(model), n_ctx=n_ctx, logits_all=True,
                                       verbose=False, n_threads=threads or os.cpu_count() or 1,
                                       seed=0)  # fmt: skip
        self.bias = logit_bias_of(model, self.llm.n_vocab())
        if control_vector is not None:
            data, n_embd = control_vector_data(control_vector)
            layers = llama_cpp.llama_model_n_layer(self.llm.model)
            buffer = (ctypes.c_float * len(data))(*data.tolist())
            failed = llama_cpp.llama_set_adapter_cvec(self.llm.ctx, buffer, len(data), n_embd, 1,
                                                      layers)  # fmt: skip
            if failed:
                raise InputError(f"llama.cpp refused the control vector {control_vector}")

    def close(self) -> None:
        self.llm.close()

    def next_logits(self, ids: Sequence[int]) -> np.ndarray:
        """Next-token logits after `ids` (with the export's logit bias)."""
        self.llm.reset()
        self.llm.eval(list(ids))
        logits = np.array(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float32)
        return logits + self.bias if self.bias is not None else logits

    def greedy(self, ids: Sequence[int], new_tokens: int, stop: Collection[int] = ()) -> list[int]:
        """The greedy continuation of `ids` (argmax of the biased logits each step)."""
        self.llm.reset()
        self.llm.eval(list(ids))
        out: list[int] = []
        for _ in range(new_tokens):
            logits = np.array(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float32)
            if self.bias is not None:
                logits = logits + self.bias
            token = int(np.argmax(logits))
            out.append(token)
            if token in stop:
                break
            self.llm.eval([token])
        return out


@contextlib.contextmanager
def llama_cpp_model(model: Path, **kwargs: Any) -> Iterator[LlamaCpp]:
    runner = LlamaCpp(model, **kwargs)
    try:
        yield runner
    finally:
        runner.close()


@dataclass
class Agreement:
    """How often llama.cpp's choice equals ours, over the same token ids."""

    top1: int  # prompts whose next token (argmax) is the same
    greedy: int  # prompts whose whole greedy continuation is the same
    greedy_tokens: int  # continuation tokens equal before the first difference, summed
    prompts: int
    new_tokens: int

    def as_dict(self) -> dict[str, float]:
        n = max(self.prompts, 1)
        share = self.greedy_tokens / max(n * self.new_tokens, 1)
        return {"prompts": self.prompts, "top1_agreement": self.top1 / n,
                "greedy_equal": self.greedy / n, "greedy_prefix_share": share}  # fmt: skip


def agreement(
    lm: LanguageModel, runner: LlamaCpp, prompts: Sequence[str], new_tokens: int = 20,
) -> Agreement:  # fmt: skip
    """llama.cpp (`runner`) against `lm` as it is now (apply or bake the edit around the call):
    next tokens and greedy continuations of the same prompt ids, stopping at `lm`'s eos."""
    ids = [lm.tokenizer(p)["input_ids"] for p in prompts]
    with torch.inference_mode():
        ours_next = [int(lm.model(torch.tensor([x], device=lm.device)).logits[0, -1].argmax())
                     for x in ids]  # fmt: skip
    ours = generate(lm, list(prompts), SamplingConfig(greedy=True, max_new_tokens=new_tokens),
                    progress=False)  # fmt: skip
    stop = eos_ids(lm)
    top1 = greedy = prefix = 0
    for x, mine, gen in zip(ids, ours_next, ours, strict=True):
        top1 += int(np.argmax(runner.next_logits(x))) == mine
        theirs = [t for t in runner.greedy(x, new_tokens, stop=stop) if t not in stop]
        same = [t for t in gen.token_ids if t not in stop]
        greedy += theirs == same
        for a, b in zip(theirs, same, strict=False):
            if a != b:
                break
            prefix += 1
    return Agreement(top1, greedy, prefix, len(ids), new_tokens)
