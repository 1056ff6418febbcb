"""Collecting what a plan asks for: continuations of every method (generated, scored, judged,
checked for fluency, and their NLL under the unmodified model), written a chunk at a time so an
interrupted run resumes; and the clean-text perplexity of every method, cached per method."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from ..engines import Engine
from ..engines.generation import (
    Generation,
    SamplingConfig,
    prompt_limit,
    prompt_token_ids,
    shorten,
)
from ..interventions import Intervention
from ..models import LanguageModel
from ..scoring import Scorer, load_scorer, vocabulary_of
from .capability import TASKS, task_correct
from .config import CLEAN_TEXT_KEYS, ORIGINAL
from .fluency import degenerate_reason
from .perplexity import continuation_nll, shared_perplexities
from .plan import Plan, signature
from .run import RunFolder
from .store import ContinuationStore

log = logging.getLogger(__name__)


class Timer:
    """Seconds spent per method, kept in the run folder across sessions."""

    def __init__(self, run: RunFolder) -> None:
        self.run = run
        self.seconds: dict[str, float] = run.read_json(RunFolder.SECONDS, {})

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds
        self.run.write_json(RunFolder.SECONDS, self.seconds)


def _rows(
    lm: LanguageModel,
    name: str,
    gens: list[Generation],
    scorer: Scorer,
    judge: Scorer | None,
    known: Callable[[str], bool],
    ppl_batch_size: int,  # 0: no continuation NLL
    sampling: SamplingConfig,
) -> list[dict[str, Any]]:
    texts = [g.text for g in gens]
    scores = scorer.score(texts)
    judged = judge.score(texts) if judge else None
    # Fluency of what was generated, judged by the unmodified model.
    nll = np.full(len(gens), np.nan)
    if ppl_batch_size:
        distinct = list(dict.fromkeys(g.prompt for g in gens))
        prompt_tokens = dict(zip(distinct, prompt_token_ids(lm, distinct, sampling), strict=True))
        nll = continuation_nll(lm, [prompt_tokens[g.prompt] for g in gens],
                               [g.token_ids for g in gens],
                               batch_size=8 * ppl_batch_size)  # fmt: skip
    return [
        {
            "method": name,
            "prompt_index": g.prompt_index,
            "sample_index": g.sample_index,
            "prompt": g.prompt,
            "continuation": g.text,
            "token_ids": g.token_ids,
            "score": float(scores[r]),
            "judge_score": float(judged[r]) if judged is not None else None,
            "continuation_nll": None if np.isnan(nll[r]) else float(nll[r]),
            "degenerate": degenerate_reason(g.text, known),
        }
        for r, g in enumerate(gens)
    ]


def prefixed(
    lm: LanguageModel, iv: Intervention | None, prompts: list[str], sampling: SamplingConfig
) -> tuple[list[str], list[str]]:
    """(what the model reads, the user's prompts): a prompting method's text before each prompt,
    the prompt shortened first so that the text is never what a long prompt loses; the same
    list twice (the engine shortens) for any other method."""
    prefix = iv.prefix if iv is not None else ""
    if not prefix:
        return prompts, prompts
    room = prompt_limit(lm, sampling) - len(lm.tokenizer(prefix, add_special_tokens=False)
                                            ["input_ids"])  # fmt: skip
    bare = shorten(lm, prompts, max(room, 1))
    return [prefix + p for p in bare], bare


def collect_continuations(
    lm: LanguageModel, plan: Plan, timer: Timer, progress: bool, engine: Engine
) -> ContinuationStore:
    """Generate what the store lacks for every method, on the same prompts and row seeds, with
    `engine`; the store, complete, is returned for the summary (read from disk once)."""
    config, store = plan.config, plan.run.store()
    samples = config.sampling.samples
    scorer = load_scorer(config.scorer)
    judge = load_scorer(config.judge) if config.judge else None
    known = vocabulary_of(scorer)
    for name, iv in plan.methods:
        todo = [k for k, pid in enumerate(plan.prompt_ids) if not store.has(name, pid, samples)]
        if todo:
            log.info("%s: %d of %d prompts to generate", name, len(todo), len(plan.prompt_ids))
        bar = tqdm(total=len(todo) * samples, desc=f"evaluate {name}", unit="continuation",
                   disable=not progress)  # moved after every generated batch  # fmt: skip
        for start in range(0, len(todo), config.chunk):
            chunk = todo[start : start + config.chunk]
            t0 = time.perf_counter()
            ids = [plan.prompt_ids[k] for k in chunk]
            read, bare = prefixed(lm, iv, [plan.prompt_texts[k] for k in chunk], config.sampling)
            gens = engine.generate(lm, iv, read, config.sampling, prompt_ids=ids,
                                   advance=bar.update)  # fmt: skip
            if read is not bare:  # rows and their NLL keep the user's prompt, as others do
                user = dict(zip(ids, bare, strict=True))
                for g in gens:
                    g.prompt = user[g.prompt_index]
            nll_batch = config.ppl_batch_size if config.continuation_nll else 0
            store.append(_rows(lm, name, gens, scorer, judge, known, nll_batch,
                               config.sampling))  # fmt: skip
            timer.add(name, time.perf_counter() - t0)
        bar.close()
    return store


class PerplexityNeed(Protocol):
    """Which methods' clean-text perplexity a caller needs, decided as the numbers come."""

    def order(self, rows: list[dict[str, Any]]) -> list[str]:
        """The methods to consider, in order, from their rows without perplexity."""

    def wanted(self, name: str, measured: dict[str, list[float]]) -> bool:
        """Whether `name` still needs measuring, given what is measured so far."""


def collect_perplexity(
    lm: LanguageModel,
    plan: Plan,
    timer: Timer,
    progress: bool,
    reuse: Sequence[RunFolder] = (),
    need: tuple[PerplexityNeed, list[dict[str, Any]]] | None = None,
) -> dict[str, list[float]]:
    """Per-text perplexity of clean text under each method, cached in the run folder; taken
    from a `reuse` folder that scored the same edit on the same texts with the same model (a
    tune's test takes its validation's), and otherwise computed for all methods at once
    (`shared_perplexities`). With `need` (and the rows it decides from), only the methods it
    asks for, in its order; the original always."""
    config, run = plan.config, plan.run
    cache: dict[str, list[float]] = run.read_json(RunFolder.PERPLEXITY, {})
    clean = plan.clean
    known = _known_perplexity(reuse, run)
    methods = dict(plan.methods)
    names = list(methods)
    if need is not None:
        names = [ORIGINAL, *(n for n in need[0].order(need[1]) if n != ORIGINAL)]
    todo = []
    for name in names:
        iv = methods[name]
        if name in cache and len(cache[name]) == len(clean):
            continue
        earlier = known.get(signature(iv))
        if earlier is not None and len(earlier) == len(clean):
            log.info("%s: clean-text perplexity taken from an earlier run of the same edit", name)
            cache[name] = earlier
            run.write_json(RunFolder.PERPLEXITY, cache)
        else:
            todo.append((name, iv))

    def wanted(name: str) -> bool:
        return need is None or need[0].wanted(name, cache)

    for name, values, seconds in shared_perplexities(
        lm, clean.texts, todo, max_length=config.ppl_max_length,
        batch_size=config.ppl_batch_size, progress=progress, wanted=wanted,
    ):  # fmt: skip
        cache[name] = [float(v) for v in values]
        run.write_json(RunFolder.PERPLEXITY, cache)
        timer.add(name, seconds)
    return {name: cache[name] for name in methods if name in cache}


def _known_perplexity(folders: Sequence[RunFolder], run: RunFolder) -> dict[str, list[float]]:
    """Signature -> per-text perplexity from folders whose run shares this run's model and
    clean-text settings."""
    ours = run.read_json(RunFolder.RUN)
    known: dict[str, list[float]] = {}
    for folder in folders:
        record = folder.read_json(RunFolder.RUN)
        values = folder.read_json(RunFolder.PERPLEXITY, {})
        if not isinstance(record, dict) or not isinstance(values, dict) or ours is None:
            continue
        same = record.get("model") == ours["model"] and all(
            record["settings"].get(k) == ours["settings"].get(k) for k in CLEAN_TEXT_KEYS)
        if same:
            known.update({sig: values[name] for name, sig in record["methods"].items()
                          if name in values})  # fmt: skip
    return known


def collect_capability(
    lm: LanguageModel, plan: Plan, timer: Timer, progress: bool
) -> dict[str, dict[str, list[float]]]:
    """Task -> method -> per-question correctness (lm-evaluation-harness), cached in the run
    folder; nothing when the config asks for no questions."""
    config, run = plan.config, plan.run
    if not config.capability:
        return {}
    cache = capability_cache(run.read_json(RunFolder.CAPABILITY, {}))
    wanted = {task: min(config.capability, TASKS[task].size()) for task in config.tasks}
    todo = [(task, n, iv) for task in config.tasks for n, iv in plan.methods
            if len(cache.get(task, {}).get(n, [])) != wanted[task]]  # fmt: skip
    for task, name, iv in tqdm(todo, desc="capability (lm-eval)", unit="task x method",
                               disable=not progress or not todo):  # fmt: skip
        t0 = time.perf_counter()
        cache.setdefault(task, {})[name] = task_correct(
            lm, iv, task=task, limit=config.capability, batch_size=config.ppl_batch_size)
        run.write_json(RunFolder.CAPABILITY, cache)
        timer.add(name, time.perf_counter() - t0)
    return {task: {name: cache[task][name] for name, _ in plan.methods} for task in config.tasks}


def capability_cache(data: Any) -> dict[str, dict[str, list[float]]]:
    """capability.json as task -> method -> correctness; a run from before tasks held BoolQ's
    alone, as method -> correctness."""
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return {"boolq": data}
    return data if isinstance(data, dict) else {}
