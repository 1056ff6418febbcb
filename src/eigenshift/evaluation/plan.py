"""Planning an evaluation: the settings, the methods under their names, the prompts (a seeded
shuffle without any prompt an intervention was fitted on), and the resume check of the folder."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from ..core.errors import InputError
from ..data import CleanTexts, PromptSet, load_clean_texts, load_prompts
from ..engines.generation import check_chat_template
from ..interventions import Intervention
from ..models import LanguageModel
from .config import ORIGINAL, EvalConfig
from .perplexity import scorable
from .run import RunFolder

log = logging.getLogger(__name__)
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
    clean: CleanTexts  # the clean text perplexity is measured on, read once here


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
    check_chat_template(lm, config.sampling)
    prompt_set = load_prompts(config.prompts)
    config = exclude_fit_prompts(config, fitted, prompt_set)
    clean = load_clean_texts(config.clean_text, limit=config.clean_texts)
    scored = scorable(lm, clean.texts, config.ppl_max_length)
    if not scored:
        raise InputError(f"clean text: none of the {len(clean.texts)} texts of {clean.source} "
                         "has two tokens, so no perplexity can be measured (the first token "
                         "is only read): give longer texts")  # fmt: skip
    if scored < len(clean.texts):
        log.warning("clean text: %d of %d texts are a single token and are not scored",
                    len(clean.texts) - scored, len(clean.texts))  # fmt: skip
    # The content, not only the path: an edited file is another run, never the old results.
    inputs = {"prompts_sha256": prompt_set.hash(), "clean_text_sha256": clean.hash()}
    run.create().resume({
        "settings": {**config.resume_settings(), **inputs},
        "model": {"name": lm.name, "unembedding_hash": lm.weight_hash(lm.arch.unembedding)},
        "methods": {name: signature(iv) for name, iv in methods},
    })  # fmt: skip
    ids, texts, source = select_prompts(config, prompt_set)
    return Plan(config, run, methods, ids, texts, source, clean)
