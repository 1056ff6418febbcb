"""Continuations from vLLM's offline `LLM`, as `Generation`s our scorer and metrics take.

vLLM pins a transformers older than eigenshift's, so it lives in its own environment (`make
vllm` builds `.venv-vllm` with vLLM's CPU build; on GPUs, `pip install vllm` there) and runs
`vllm_worker.py`, which imports nothing of eigenshift, as a long-lived subprocess: the model loads
once per served folder, not once per chunk of prompts.

vLLM serves a model folder, so an edit reaches it baked into an export, cached under
`cache_dir()/exports` by the model, its dtype and the artifact's digest (a rerun reuses it). An
edit that shifts every logit travels as the export's `logit_bias.json`, which goes into every
request's `logit_bias`. Before the first continuation of an export, a probe compares vLLM's
next-token log-probabilities with those of the saved weights: a family whose vLLM loader ties
the unembedding to the input embeddings (Gemma-2 and Cohere in vLLM 0.32) would silently serve
the unedited head, and is refused instead.

Prompts are tokenized here exactly as our loop tokenizes them, every row has its own seed
(`row_seed`), generation stops at our loop's stop tokens, and continuations are decoded here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

import torch
from tqdm.auto import tqdm

from ..core.assets import cache_dir
from ..core.errors import EngineError, InputError, NotBakeableError
from ..core.io import open_owned, read_json, write_json_atomic, write_text_atomic
from ..models import LanguageModel
from ..models.options import LOGIT_BIAS_FILE, checked_logit_bias
from .base import Advance
from .config import EngineConfig
from .generation import (
    Generation,
    SamplingConfig,
    eos_ids,
    prompt_limit,
    prompt_token_ids,
    row_seed,
    shorten,
)

if TYPE_CHECKING:
    from ..interventions import Intervention

log = logging.getLogger(__name__)

PYTHON_VARIABLE = "EIGENSHIFT_VLLM_PYTHON"
DEFAULT_PYTHON = Path(".venv-vllm/bin/python")
WORKER = Path(__file__).with_name("vllm_worker.py")
PROBE_FILE = "eigenshift-probe.json"
PROBE_TEXTS = ("The weather today is", "You are such a", "I think that the", "Once upon a time")
PROBE_TOP = 5  # tokens compared per probe text
# Largest |log p| difference between vLLM and the saved weights taken as the same model: float32
# kernels differ by ~1e-4; half precision (ours or vLLM's) rounds logits by ~1e-2 relative.
FULL_TOLERANCE, HALF_TOLERANCE = 0.02, 0.3
FULL_PRECISION = ("float32", "float64", "float", "double")
EXCEPTION_LINE = re.compile(r"(?:^|\] |\s)([\w.]*(?:Error|Exception): .*)$")
# How vLLM refuses an untied head of a family it always ties (Gemma-2 in vLLM 0.32); older
# versions skipped the weight silently, which the probe catches.
UNTIED_REFUSED = re.compile(r"no module or parameter named 'lm_head'")
CPU_MEMORY_SHARE = 0.25  # of host memory for vLLM's KV cache, when none is given on a CPU


@dataclass
class Served:
    """A folder vLLM loads, the logit bias every request carries, the probe that checks it."""

    folder: Path
    logit_bias: dict[str, float] | None
    probe: dict[str, Any] | None  # {"prompt_token_ids", "saved", "original"}; None: no check


def _read_logit_bias(folder: Path, vocab: int) -> dict[str, float] | None:
    """The bias every request carries (vLLM's request form: string ids), checked."""
    path = folder / LOGIT_BIAS_FILE
    if not path.is_file():
        return None
    bias = checked_logit_bias(read_json(path, "logit bias"), vocab, str(path))
    return {str(token): value for token, value in bias.items()}


def _next_token_logprobs(lm: LanguageModel, ids: list[list[int]]) -> list[dict[str, float]]:
    """log-softmax of the next token after each prompt, its top PROBE_TOP tokens."""
    out = []
    with torch.inference_mode():
        for row in ids:
            tensor = torch.tensor([row], device=lm.device)
            logits = lm.model(input_ids=tensor).logits[0, -1].float()
            logp = torch.log_softmax(logits, -1)
            top = torch.topk(logp, PROBE_TOP)
            out.append({str(int(t)): float(v) for t, v in zip(top.indices, top.values,
                                                              strict=True)})  # fmt: skip
    return out


def probe_tokens(lm: LanguageModel) -> list[list[int]]:
    return [lm.encode([text]).input_ids[0].tolist() for text in PROBE_TEXTS]


def tied_message(lm: LanguageModel, method: str, what: str) -> str:
    return (f"vLLM ties this {lm.arch.family} model's unembedding to its input embeddings and "
            f"{what}, so '{method}', which edits the head, cannot be served by vLLM: evaluate it "
            "with --engine hf")  # fmt: skip


def check_probe(lm: LanguageModel, probe: dict[str, Any], served: list[dict[str, float]],
                folder: Path, method: str, served_dtype: str = "float32") -> None:  # fmt: skip
    """vLLM's raw log-probabilities must match the saved weights'; when they match the unedited
    model's instead, vLLM dropped the edit (a family it ties by architecture)."""
    full = lm.dtype in (torch.float32, torch.float64) and served_dtype in FULL_PRECISION
    tolerance = FULL_TOLERANCE if full else HALF_TOLERANCE

    def distance(reference: list[dict[str, float]]) -> float:
        worst = 0.0
        for ref, got in zip(reference, served, strict=True):
            for token, value in ref.items():
                if token not in got:  # outside vLLM's top: at least as far as its k-th
                    worst = max(worst, abs(value - min(got.values())))
                else:
                    worst = max(worst, abs(value - got[token]))
        return worst

    saved, original = distance(probe["saved"]), distance(probe["original"])
    if saved <= tolerance:
        log.info("vLLM serves %s as saved (probe: max |log p| difference %.2g)", folder, saved)
        return
    if original <= tolerance:  # the unedited model's, not the edit's
        raise NotBakeableError(tied_message(
            lm, method, f"serves the unedited unembedding (probe: {original:.3g} from the "
            f"original, {saved:.3g} from the edit)"))  # fmt: skip
    raise EngineError(
        f"vLLM's next-token log-probabilities for {folder} differ from the saved weights' by "
        f"{saved:.3g} (tolerance {tolerance}): this model does not serve faithfully in vLLM; use "
        "--engine hf"
    )


def _probe_python(path: Path) -> bool | None:
    """Whether the python at `path` can import vllm (found, not imported: seconds saved); None
    when `path` is no python that runs. Asked before any work, not when the worker starts."""
    code = "import importlib.util as u; print('eigenshift-probe', u.find_spec('vllm') is not None)"
    try:
        done = subprocess.run([str(path), "-c", code], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    answer = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if answer not in (["eigenshift-probe True"], ["eigenshift-probe False"]):
        return None
    return answer == ["eigenshift-probe True"]


class _Worker:
    """One vLLM process serving one folder; requests and answers are JSON lines."""

    def __init__(self, python: Path, script: Path, setup: dict[str, Any], log_path: Path) -> None:
        self.key = json.dumps(setup, sort_keys=True)
        self.log_path = log_path
        self.log: IO[str] = open_owned(log_path, "w")
        self.process = subprocess.Popen(
            [str(python), str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.log, text=True, bufsize=1,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )  # fmt: skip
        self.folder = setup["model"]
        self.send(setup)
        ready = self.receive("ready")
        log.info("vLLM loaded %s in %.1f s", self.folder, ready["ready"])

    def send(self, record: dict[str, Any]) -> None:
        try:
            assert self.process.stdin is not None
            self.process.stdin.write(json.dumps(record) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.fail()

    def receive(self, kind: str, advance: Advance | None = None) -> dict[str, Any]:
        assert self.process.stdout is not None
        done = 0
        for line in self.process.stdout:
            record = json.loads(line)
            if "progress" in record:
                if advance is not None:
                    advance(int(record["progress"]) - done)
                done = int(record["progress"])
                continue
            if kind in record:
                return dict(record)
        self.fail()

    def fail(self) -> NoReturn:
        code = self.process.wait()
        self.log.close()
        text = self.log_path.read_bytes().decode(errors="replace")
        kept = cache_dir() / "vllm-last-failure.log"  # vLLM's root cause is in it
        write_text_atomic(kept, text)
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        # The root cause is the first exception vLLM reports (its own processes add wrappers
        # and shutdown lines after it; warnings may carry handled exceptions).
        causes = [m.group(1) for ln in lines if " WARNING " not in ln
                  for m in [EXCEPTION_LINE.search(ln)] if m]  # fmt: skip
        cause = (causes or lines or ["no output"])[0 if causes else -1]
        cause = cause if len(cause) <= 400 else cause[:400] + "..."
        raise EngineError(f"vLLM failed on {self.folder}: {cause} (exit {code}); its log: "
                          f"{kept}")  # fmt: skip

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@dataclass
class VLLMEngine:
    """The `vllm` engine. Its arguments come from `EngineConfig` (tensor/pipeline/data
    parallelism, memory share, context length, any other through --engine-arg)."""

    python: Path
    config: EngineConfig = field(default_factory=lambda: EngineConfig(engine="vllm"))
    worker: Path = WORKER  # the script the python runs (tests give a stand-in)
    exports: Path | None = None  # where baked exports are cached (default cache_dir()/exports)
    seconds: float = 0.0  # generation time inside vLLM so far (loading excluded)
    name: str = "vllm"
    _served: dict[str, Served] = field(default_factory=dict, repr=False)
    _probed: set[str] = field(default_factory=set, repr=False)
    _process: _Worker | None = field(default=None, repr=False)

    @classmethod
    def find(cls, config: EngineConfig | None = None) -> VLLMEngine:
        config = config or EngineConfig(engine="vllm")
        chosen = config.vllm_python or os.environ.get(PYTHON_VARIABLE) or DEFAULT_PYTHON
        path = Path(chosen).expanduser()
        hint = (f"run `make vllm`, or point {PYTHON_VARIABLE} (or --vllm-python) at a python "
                "that has vllm")  # fmt: skip
        if not path.is_file():
            raise InputError(f"no vLLM environment at {path}: {hint}")
        has_vllm = _probe_python(path)
        if has_vllm is None:
            raise InputError(f"{path} is not a python interpreter that runs: {hint}")
        if not has_vllm:
            raise InputError(f"the python at {path} has no vllm package: {hint}")
        return cls(path, config)

    # -- what vLLM serves ----------------------------------------------------------------------
    def prepare(self, lm: LanguageModel, interventions: Sequence[Intervention]) -> None:
        """Bake and export every intervention now, so an unbakeable one is refused before any
        continuation is generated."""
        for intervention in interventions:
            self.served(lm, intervention)

    def served(self, lm: LanguageModel, intervention: Intervention | None) -> Served:
        key = "original" if intervention is None else intervention.digest()
        if key in self._served:
            return self._served[key]
        # a prompting method's text is in the prompts already: only weights are served
        weights = intervention.weights_only() if intervention is not None else None
        if weights is None:
            folder = Path(lm.location) if lm.location and Path(lm.location).is_dir() else None
            # A hub id is resolved by vLLM in the same hub cache.
            vocab = lm.arch.vocab_size
            served = Served(folder or Path(lm.location), _read_logit_bias(folder, vocab) if folder
                            else None, None)  # fmt: skip
        else:
            served = self._export(lm, weights)
        self._served[key] = served
        return served

    def _export(self, lm: LanguageModel, intervention: Intervention) -> Served:
        from ..export.hf import EXPORT_FILE, export_model, without_logit_bias

        identity = json.dumps([lm.location, lm.weight_hash(lm.arch.unembedding), str(lm.dtype),
                               intervention.digest()])  # fmt: skip
        folder = (self.exports or cache_dir() / "exports") / hashlib.sha256(
            identity.encode()).hexdigest()[:20]  # fmt: skip
        probe_path = folder / PROBE_FILE
        if not ((folder / EXPORT_FILE).is_file() and probe_path.is_file()):
            ids = probe_tokens(lm)
            with without_logit_bias(lm):
                original = _next_token_logprobs(lm, ids)
            saved: list[dict[str, float]] = []
            try:
                export_model(lm, intervention, folder,
                             inspect=lambda m: saved.extend(_next_token_logprobs(m, ids)))
            except NotBakeableError as exc:
                raise NotBakeableError(f"{exc} (the vllm engine serves baked weights; "
                                       "--engine hf applies it as hooks)") from None
            write_json_atomic(probe_path, {"prompt_token_ids": ids, "saved": saved,
                                           "original": original})  # fmt: skip
            log.info("exported '%s' for vLLM to %s", intervention.method, folder)
        return Served(folder, _read_logit_bias(folder, lm.arch.vocab_size),
                      read_json(probe_path, "vLLM export probe"))

    # -- generation ----------------------------------------------------------------------------
    def _engine_args(self, lm: LanguageModel, context: int) -> dict[str, Any]:
        args: dict[str, Any] = {"seed": 0, "skip_tokenizer_init": True}
        if self.config.vllm_dtype != "model":
            args["dtype"] = self.config.vllm_dtype
        else:
            args["dtype"] = str(lm.dtype).removeprefix("torch.")
        if self.config.gpu_memory_utilization is None and not torch.cuda.is_available():
            args["gpu_memory_utilization"] = CPU_MEMORY_SHARE
        args["max_model_len"] = context
        return args | self.config.vllm_args()

    def _worker_for(self, lm: LanguageModel, folder: Path, context: int) -> _Worker:
        setup = {"model": str(folder), "engine_args": self._engine_args(lm, context)}
        key = json.dumps(setup, sort_keys=True)
        if self._process is None or self._process.key != key:
            self.close()
            self._process = _Worker(self.python, self.worker, setup,
                                    cache_dir() / "vllm-worker.log")  # fmt: skip
        return self._process

    def generate(
        self,
        lm: LanguageModel,
        intervention: Intervention | None,
        prompts: Sequence[str],
        config: SamplingConfig,
        *,
        prompt_ids: Sequence[int] | None = None,
        progress: bool = False,
        advance: Advance | None = None,
    ) -> list[Generation]:
        served = self.served(lm, intervention)
        prompt_ids = list(range(len(prompts))) if prompt_ids is None else list(prompt_ids)
        if len(prompt_ids) != len(prompts):
            raise InputError("prompt_ids must have one entry per prompt")
        limit = prompt_limit(lm, config)
        prompts = shorten(lm, prompts, limit)
        encoded = prompt_token_ids(lm, prompts, config)
        # Room for the longest prompt the settings allow (so one worker serves every chunk).
        context = self.config.max_model_len or limit + config.max_new_tokens + 8
        try:
            worker = self._worker_for(lm, served.folder, context)
        except EngineError as exc:
            if intervention is not None and UNTIED_REFUSED.search(str(exc)):
                raise NotBakeableError(tied_message(lm, intervention.method, "refuses to load "
                                                    "a separate lm_head")) from None  # fmt: skip
            raise
        rows = [(p, s) for p in range(len(prompts)) for s in range(config.samples)]
        stops = eos_ids(lm)
        if served.probe is not None and str(served.folder) not in self._probed:
            worker.send({"rows": [], "sampling": {}, "probe": {
                "prompt_token_ids": served.probe["prompt_token_ids"], "logprobs": PROBE_TOP}})
            method = intervention.method if intervention is not None else "original"
            check_probe(lm, served.probe, worker.receive("outputs")["probe"], served.folder,
                        method, str(self._engine_args(lm, context)["dtype"]))  # fmt: skip
            self._probed.add(str(served.folder))
        worker.send({
            "sampling": {"greedy": config.greedy, "temperature": config.temperature,
                         "top_p": config.top_p, "max_tokens": config.max_new_tokens,
                         "stop_token_ids": sorted(stops)},
            "rows": [{"prompt_token_ids": encoded[p],
                      "seed": row_seed(config.seed, prompt_ids[p], s)} for p, s in rows],
            "logit_bias": served.logit_bias,
        })  # fmt: skip
        bar = tqdm(total=len(rows), desc="generate (vLLM)", unit="seq", disable=not progress)

        def moved(n: int) -> None:
            bar.update(n)
            if advance is not None:
                advance(n)

        answer = worker.receive("outputs", moved)
        bar.close()
        self.seconds += float(answer["seconds"])
        out = []
        for (p, s), record in zip(rows, answer["outputs"], strict=True):
            ids = list(record["token_ids"])
            while ids and ids[-1] in stops:  # our loop ends before the stop token
                ids.pop()
            out.append(Generation(prompt_index=prompt_ids[p], sample_index=s, prompt=prompts[p],
                                  text=str(lm.tokenizer.decode(ids, skip_special_tokens=True)),
                                  token_ids=ids))  # fmt: skip
        return out

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None
