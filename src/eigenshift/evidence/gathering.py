"""A fit's evidence: toxic and clean lm_head-input states, from the model's own continuations of
prompts (asked of an engine) and from labelled text, both teacher-forced
(`capture.states.capture_states`). `gather` returns them as `FitStates`, which EigenShift's fit
receives like any other input: the method itself never loads data, scores text or generates.

A toxic state is the state that predicts a token of a word carrying toxicity (word-level
occlusion: removing the word lowers the scorer's score by more than `attribution_drop`) that the
model would plausibly emit (rank <= `max_rank` or probability >= `min_prob`; rank 1 alone is the
paper's argmax check). Clean states are every position of clean texts; the fit matches them to
the toxic states' positions within each source, so the contrast is not confounded with
position or with where the text came from. Every state carries its text (a group), so fits on
disjoint halves and bootstraps resample whole texts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch

from ..capture.states import FitStates, TokenStates, capture_states, text_tokens
from ..data import LabelledTexts, load_labelled, load_prompts
from ..engines import Engine, HFEngine
from ..engines.config import SamplingConfig
from ..engines.generation import Generation
from ..interventions.eigenshift.config import EigenShiftConfig
from ..interventions.eigenshift.method import EigenShift, EigenShiftFit
from ..models import LanguageModel
from ..models.architecture import weight_of
from ..scoring import Scorer, load_scorer
from ..scoring.attribution import attribute_words, piece_spans, token_pieces, tokens_in
from ..scoring.vocabulary import judge_vocabulary, vocabulary_words
from .config import SOURCES, EvidenceConfig, EvidenceRule

log = logging.getLogger(__name__)


def _select(
    lm: LanguageModel,
    captured: TokenStates,
    toxic_tokens: dict[int, list[int]],
    clean_texts: Sequence[int],
    rule: EvidenceRule,
    source: int,
) -> FitStates:
    """Toxic states from the attributed tokens (text -> token indices) that pass the
    plausibility rule; clean states from every token of the clean texts."""
    candidates: list[int] = []
    for i, js in toxic_tokens.items():
        rows = captured.of_text(i)
        candidates += rows[torch.isin(captured.position[rows], torch.tensor(js))].tolist()
    cand = torch.tensor(candidates, dtype=torch.long)
    by_rank = captured.ranks[cand] <= rule.max_rank
    by_prob = captured.probs[cand] >= rule.min_prob
    toxic = cand[by_rank | by_prob]
    clean = torch.cat([captured.of_text(i) for i in clean_texts]) if clean_texts else \
        torch.zeros(0, dtype=torch.long)  # fmt: skip
    name = SOURCES[source]
    counts = {
        "toxic_texts": len(toxic_tokens),
        "clean_texts": len(clean_texts),
        "toxic_word_tokens": len(cand),
        "kept_by_rank": int(by_rank.sum()),
        "kept_by_prob_only": int((by_prob & ~by_rank).sum()),
        "argmax": int((captured.ranks[cand] == 1).sum()),
        "rejected_implausible": int((~(by_rank | by_prob)).sum()),
        "toxic_states": len(toxic),
        "clean_states": len(clean),
    }
    log.info("%s evidence: %s", name, counts)

    def origin(rows: torch.Tensor) -> torch.Tensor:
        return torch.full((len(rows),), source, dtype=torch.long)

    tokens = [str(lm.tokenizer.decode([int(t)])) for t in captured.token_ids[toxic]]
    return FitStates(
        captured.states[toxic], captured.position[toxic], captured.text_index[toxic],
        origin(toxic), captured.states[clean], captured.position[clean],
        captured.text_index[clean], origin(clean), counts={name: counts}, toxic_tokens=tokens,
    )  # fmt: skip


def _attributed(
    scorer: Scorer, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
    rule: EvidenceRule,
) -> list[list[int]]:  # fmt: skip
    """Per text, the indices of the tokens of its toxic words (only the part read is scored)."""
    read = [t[: s[-1][1]] if s else "" for t, s in zip(texts, spans, strict=True)]
    return [tokens_in(s, a.toxic_words(rule.attribution_drop))
            for s, a in zip(spans, attribute_words(scorer, read, rule.attribution_drop),
                            strict=True)]  # fmt: skip


def _clean_subset(
    ids: Sequence[Sequence[int]], candidates: Sequence[int], rule: EvidenceRule
) -> list[int]:
    """Clean texts in a seeded order until their tokens reach the budget."""
    order = np.random.default_rng(rule.split_seed).permutation(len(candidates))
    total, chosen = 0, []
    for j in order:
        if total >= rule.clean_budget:
            break
        chosen.append(candidates[j])
        total += len(ids[candidates[j]])
    return sorted(chosen)


def labelled_states(
    lm: LanguageModel, data: LabelledTexts, scorer: Scorer, rule: EvidenceRule,
    progress: bool = True,
) -> FitStates:  # fmt: skip
    """Teacher-forced states of labelled texts: the toxic words of toxic texts (as the scorer
    attributes them), every token of a budget of clean ones. A toxic text is read only up to its
    last toxic token: nothing after it is used."""
    ids, spans = text_tokens(lm, data.texts, rule.max_tokens)
    toxic_idx = [i for i, y in enumerate(data.labels) if y == 1]
    attributed = _attributed(scorer, [data.texts[i] for i in toxic_idx],
                             [spans[i] for i in toxic_idx], rule)  # fmt: skip
    toxic = [(i, js) for i, js in zip(toxic_idx, attributed, strict=True) if js]
    clean_idx = _clean_subset(ids, [i for i, y in enumerate(data.labels) if y == 0], rule)
    used = [i for i, _ in toxic] + clean_idx
    token_ids = [ids[i][: max(js) + 1] for i, js in toxic] + [ids[i] for i in clean_idx]
    captured = capture_states(lm, [data.texts[i] for i in used], token_ids=token_ids,
                              measure=[n < len(toxic) for n in range(len(used))],
                              max_length=rule.max_tokens, progress=progress)  # fmt: skip
    toxic_tokens = {n: js for n, (_, js) in enumerate(toxic)}
    clean = list(range(len(toxic), len(used)))
    return _select(lm, captured, toxic_tokens, clean, rule, source=1)


def generated_states(
    lm: LanguageModel, prompts: Sequence[str], prompt_ids: Sequence[int],
    sampling: SamplingConfig, scorer: Scorer, rule: EvidenceRule, threshold: float,
    progress: bool = True, engine: Engine | None = None,
) -> FitStates:  # fmt: skip
    """Continuations of the prompts (greedy or sampled) by `engine` (default: our own loop),
    scored; teacher-forced states of their tokens, with the exact generated ids."""
    gens: list[Generation] = (engine or HFEngine()).generate(
        lm, None, prompts, sampling, prompt_ids=prompt_ids, progress=progress)  # fmt: skip
    gens = [g for g in gens if g.token_ids]
    scores = scorer.score([g.text for g in gens]) if gens else np.zeros(0)
    toxic_idx = [i for i, s in enumerate(scores) if s >= threshold]
    clean_idx = [i for i, s in enumerate(scores) if s < threshold]
    spans = [piece_spans(token_pieces(lm.tokenizer, gens[i].token_ids)) for i in toxic_idx]
    attributed = _attributed(scorer, [gens[i].text for i in toxic_idx], spans, rule)
    toxic_rows = set(toxic_idx)
    captured = capture_states(lm, [g.text for g in gens], [g.prompt for g in gens],
                              token_ids=[g.token_ids for g in gens],
                              measure=[i in toxic_rows for i in range(len(gens))],
                              max_length=sampling.max_new_tokens, progress=progress)  # fmt: skip
    toxic_tokens = {i: js for i, js in zip(toxic_idx, attributed, strict=True) if js}
    states = _select(lm, captured, toxic_tokens, clean_idx, rule, source=0)
    states.counts["generated"]["continuations"] = len(gens)
    return states


def gather(
    lm: LanguageModel, config: EvidenceConfig | None = None, *, scorer: Scorer | None = None,
    engine: Engine | None = None, progress: bool = True,
) -> FitStates:  # fmt: skip
    """The states of every source `config` names, with what identifies their inputs (data
    hashes, the prompts generated on); generated continuations come from `engine` (default: our
    own loop)."""
    config = config or EvidenceConfig()
    start = time.perf_counter()
    scorer = scorer or load_scorer(config.scorer)
    states = FitStates.empty(lm.arch.hidden_size)
    hashes: dict[str, str] = {}
    prompt_ids: list[int] = []
    if config.uses("generated"):
        prompts = load_prompts(config.prompts)
        prompt_ids, texts = prompts.select(config.fit_prompts, config.prompt_seed)
        states = states.combine(generated_states(lm, texts, prompt_ids, config.sampling, scorer,
                                                 config.rule, config.threshold, progress,
                                                 engine))  # fmt: skip
        hashes["prompts"] = prompts.hash()
    if config.uses("labelled"):
        data = load_labelled(config.data, text_column=config.text_column,
                             label_column=config.label_column, layout=config.layout,
                             max_examples=config.max_texts, seed=config.prompt_seed)  # fmt: skip
        states = states.combine(labelled_states(lm, data, scorer, config.rule, progress))
        hashes["labelled"] = data.hash()
    states.data_hashes, states.fit_prompt_indices = hashes, list(prompt_ids)
    states.settings, states.seed = asdict(config), config.sampling.seed
    states.split_seed = config.rule.split_seed
    rows = int(weight_of(lm.unembedding).shape[0])
    states.vocabulary = judge_vocabulary(vocabulary_words(lm.tokenizer, rows), scorer)
    states.seconds = round(time.perf_counter() - start, 2)
    return states


def fit_eigenshift(
    lm: LanguageModel, config: EigenShiftConfig | None = None,
    evidence: EvidenceConfig | None = None, *, scorer: Scorer | None = None,
    engine: Engine | None = None, progress: bool = True,
) -> EigenShiftFit:  # fmt: skip
    """Gather the evidence, then fit EigenShift's statistics on it: the two steps `fit
    eigenshift` runs, for a caller that wants one call."""
    states = gather(lm, evidence, scorer=scorer, engine=engine, progress=progress)
    return EigenShift.fit_statistics(lm, config, states)
