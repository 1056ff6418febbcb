"""EigenShift's evidence: toxic and clean lm_head-input states, from the model's own continuations
of prompts and from labelled text, both teacher-forced (`capture.capture_states`).

A toxic state is the state that predicts a token of a word carrying toxicity (word-level
occlusion: removing the word lowers the scorer's score by more than `attribution_drop`) that the
model would plausibly emit (rank <= `max_rank` or probability >= `min_prob`; rank 1 alone is the
paper's argmax check). Clean states are every position of clean texts; `clean_weights` matches
them to the toxic states' positions within each source, so the contrast is not confounded with
position or with where the text came from. Every state carries its text (a group), so fits on
disjoint halves and bootstraps resample whole texts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .capture import TokenStates, capture_states, text_tokens
from .data import LabelledTexts
from .engines import Engine, HFEngine
from .errors import InputError
from .generation import Generation, SamplingConfig
from .models import LanguageModel
from .scoring import Scorer
from .scoring.attribution import attribute_words, piece_spans, token_pieces, tokens_in
from .settings import check_settings, setting

log = logging.getLogger(__name__)
SOURCES = ("generated", "labelled")


@dataclass(frozen=True)
class EvidenceRule:
    """Which tokens of a toxic text become toxic states, and how much text is read."""

    attribution_drop: float = setting(0.1, "A word carries toxicity when removing it lowers the "
                                           "scorer's score by more than this.",
                                      minimum=0, maximum=1)  # fmt: skip
    max_rank: int = setting(10, "A toxic token counts when the model ranks it at most this "
                                "(1: the argmax only) ...", minimum=1)  # fmt: skip
    min_prob: float = setting(0.05, "... or gives it at least this probability.", minimum=0,
                              maximum=1)  # fmt: skip
    max_tokens: int = setting(64, "Tokens read of each labelled text.", minimum=2)
    # 10,000 (docs/results.md, issue 12): on the default model it selects the same directions
    # with the same stability as 40,000, in half the fit time.
    clean_budget: int = setting(10_000, "Clean states drawn per source (whole texts, seeded).",
                                minimum=1)  # fmt: skip
    split_seed: int = setting(0, "Seed of the clean-text draw, the stability halves and the "
                                 "bootstrap.")  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class FitStates:
    """States with where each came from: `*_groups` name the text (unique over sources),
    `*_sources` index SOURCES, `*_positions` the token's index in its text."""

    toxic: torch.Tensor  # (n, d)
    toxic_positions: torch.Tensor
    toxic_groups: torch.Tensor
    toxic_sources: torch.Tensor
    clean: torch.Tensor  # (m, d)
    clean_positions: torch.Tensor
    clean_groups: torch.Tensor
    clean_sources: torch.Tensor
    counts: dict[str, Any] = field(default_factory=dict)
    toxic_tokens: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls, d: int) -> FitStates:
        z = torch.zeros(0, dtype=torch.long)
        return cls(torch.zeros(0, d), z, z, z, torch.zeros(0, d), z, z, z)

    def combine(self, other: FitStates) -> FitStates:
        """Both sets of states; `other`'s groups are renumbered after this one's."""
        shift = max(self.toxic_groups.tolist() + self.clean_groups.tolist(), default=-1) + 1
        counts = {**self.counts, **other.counts}
        return FitStates(
            torch.cat([self.toxic, other.toxic]),
            torch.cat([self.toxic_positions, other.toxic_positions]),
            torch.cat([self.toxic_groups, other.toxic_groups + shift]),
            torch.cat([self.toxic_sources, other.toxic_sources]),
            torch.cat([self.clean, other.clean]),
            torch.cat([self.clean_positions, other.clean_positions]),
            torch.cat([self.clean_groups, other.clean_groups + shift]),
            torch.cat([self.clean_sources, other.clean_sources]),
            counts,
            self.toxic_tokens + other.toxic_tokens,
        )


def clean_weights(
    toxic_keys: torch.Tensor, clean_keys: torch.Tensor, clean_positions: torch.Tensor, contrast: str
) -> torch.Tensor:
    """Weights over the clean states summing to 1: first positions only (the paper), or the toxic
    states' mix of (source, position) keys (matched)."""
    if contrast == "first":
        first = min(clean_positions.tolist(), default=0)
        w = (clean_positions == first).double()
    else:
        keys, inverse = torch.unique(torch.cat([toxic_keys, clean_keys]), return_inverse=True)
        t_inv, c_inv = inverse[: len(toxic_keys)], inverse[len(toxic_keys) :]
        toxic_share = torch.bincount(t_inv, minlength=len(keys)).double()
        clean_count = torch.bincount(c_inv, minlength=len(keys)).double()
        per_key = torch.where(clean_count > 0, toxic_share / clean_count.clamp(min=1), 0.0)
        w = per_key[c_inv]
    if w.sum() <= 0:
        raise InputError("no clean states at the positions of the toxic ones; use more prompts "
                         "or more labelled texts")  # fmt: skip
    return w / w.sum()


def keys_of(positions: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    return sources * 1_000_000 + positions


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
