"""Teacher-forced capture of the states that predict each token of a text, in one batched pass.

For every token t of a text, the lm_head input at t-1 is the state the model would have emitted
t from, and the model's probability and rank of t under it say whether the model would plausibly
emit t. Capturing them by teacher forcing decouples evidence from generation: any text (labelled
data, continuations from any source) becomes states in one forward pass per batch, where
generate-and-capture needs one pass per generated token.

Given (prompt, continuation) pairs, only the continuation's tokens are returned, with the prompt
tokenized exactly as generation tokenizes it, so the states equal those captured while
generating (tests check atol 1e-4 in float32 for every family).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from ..core.errors import InputError
from ..models import LanguageModel
from ..models.language_model import head_chars, positions_from_mask
from ..scoring.vocabulary import TokenJudgement
from .hooks import hooked

log = logging.getLogger(__name__)


@dataclass
class TokenStates:
    """One row per predicted token, flattened over texts."""

    states: torch.Tensor  # (n, d) float32: the lm_head input that predicts the token
    token_ids: torch.Tensor  # (n,) the token
    probs: torch.Tensor  # (n,) the model's probability of it (temperature 1; NaN: not measured)
    ranks: torch.Tensor  # (n,) 1 = the model's argmax (0: not measured)
    text_index: torch.Tensor  # (n,) which input text
    position: torch.Tensor  # (n,) the token's index within its text (or continuation)

    def __len__(self) -> int:
        return len(self.token_ids)

    def of_text(self, i: int) -> torch.Tensor:
        """Row indices of text i's tokens, in order."""
        return (self.text_index == i).nonzero().squeeze(-1)


def text_tokens(
    lm: LanguageModel, texts: Sequence[str], max_length: int
) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """Token ids of each text (its first `max_length`) with their character spans."""
    enc = lm.tokenizer(head_chars(list(texts), max_length), add_special_tokens=False,
                       truncation=True, max_length=max_length,
                       return_offsets_mapping=True)  # fmt: skip
    spans = [[(int(a), int(b)) for a, b in offsets] for offsets in enc["offset_mapping"]]
    return [list(ids) for ids in enc["input_ids"]], spans


def _bos(lm: LanguageModel) -> list[int]:
    """The BOS the tokenizer puts before a text, when it puts one."""
    tok = lm.tokenizer
    bos = tok.bos_token_id
    return [bos] if bos is not None and tok("a")["input_ids"][:1] == [bos] else []


def capture_states(
    lm: LanguageModel,
    texts: Sequence[str],
    prompts: Sequence[str] | None = None,
    *,
    token_ids: Sequence[Sequence[int]] | None = None,
    measure: Sequence[bool] | None = None,
    max_length: int = 128,
    batch_size: int = 16,
    progress: bool = True,
) -> TokenStates:
    """The state that predicts each token of each text, its probability and rank.

    Without `prompts`, a text's first token is predicted from the BOS state when the tokenizer
    adds one (and is skipped otherwise: positions then start at 1). With `prompts`, `texts` are
    continuations of them. `token_ids` gives the exact tokens (a generation's, or a prefix of a
    text's) instead of tokenizing `texts`. `measure` says which texts need probabilities and
    ranks (default all): over a large vocabulary they cost as much as a small model's pass, and
    clean evidence needs only the states.
    """
    if prompts is not None and len(prompts) != len(texts):
        raise InputError("give one prompt per continuation")
    if token_ids is not None and len(token_ids) != len(texts):
        raise InputError("give one list of token ids per text")
    if measure is not None and len(measure) != len(texts):
        raise InputError("give one measure flag per text")
    if token_ids is not None:
        targets = [list(ids)[:max_length] for ids in token_ids]
    else:
        targets = text_tokens(lm, texts, max_length)[0]
    if prompts is not None:
        prefixes = [lm.encode([p]).input_ids[0].tolist() for p in prompts]  # as generation does
    else:
        prefixes = [_bos(lm) for _ in texts]
    rows: list[tuple[int, list[int], list[int]]] = []
    shifted = []
    for i, (prefix, target) in enumerate(zip(prefixes, targets, strict=True)):
        shifted.append(not prefix)
        if not prefix and target:  # nothing predicts the first token: it becomes the prefix
            prefix, target = target[:1], target[1:]
        rows.append((i, prefix, target))
    measured = [True] * len(texts) if measure is None else [bool(m) for m in measure]
    return _forward(lm, rows, batch_size, progress, shifted, measured)


def _logits(lm: LanguageModel, states: torch.Tensor) -> torch.Tensor:
    """The model's logits from lm_head inputs, with the soft-capping some families apply."""
    logits = lm.unembedding(states).float()
    cap = lm.logit_softcap
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def _prob_rank(
    lm: LanguageModel, states: torch.Tensor, target: torch.Tensor, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probability and rank of each target token, a few hundred rows of logits at a time (a
    batch's logits over a large vocabulary would be the largest tensor of the pass)."""
    probs, ranks = [], []
    for start in range(0, len(states), chunk):
        logits = _logits(lm, states[start : start + chunk])
        chosen = logits.gather(1, target[start : start + chunk, None])
        probs.append((chosen.squeeze(1) - logits.logsumexp(-1)).exp().cpu())
        ranks.append(((logits > chosen).sum(-1) + 1).cpu())
    return torch.cat(probs), torch.cat(ranks)


@torch.inference_mode()
def _forward(
    lm: LanguageModel,
    rows: list[tuple[int, list[int], list[int]]],
    batch_size: int,
    progress: bool,
    shifted: list[bool],
    measured: list[bool],
) -> TokenStates:
    d = lm.arch.hidden_size
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in
                                            ("states", "ids", "probs", "ranks", "text", "pos")}
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]) + len(rows[r][2]))
    seen: list[torch.Tensor] = []

    def keep_input(_m: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if seen:  # our own calls below, on the chosen states
            return None
        seen.append(args[0])  # every position's state; the head then computes the last only
        return (args[0][:, -1:], *args[1:])

    starts = range(0, len(order), batch_size)
    with hooked(lm.unembedding, keep_input, "input"):
        for start in tqdm(starts, desc="capture", unit="batch", disable=not progress):
            chunk = [rows[r] for r in order[start : start + batch_size] if rows[r][2]]
            if not chunk:
                continue
            width = max(len(p) + len(t) for _, p, t in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (_, p, t) in enumerate(chunk):
                seq = p + t
                ids[r, width - len(seq) :] = torch.tensor(seq)
                mask[r, width - len(seq) :] = 1
            seen.clear()
            lm.model(input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device),
                     position_ids=positions_from_mask(mask).to(lm.device),
                     use_cache=False)  # fmt: skip
            hidden = seen[-1]
            picked, targets, wanted = [], [], []
            for r, (i, _, t) in enumerate(chunk):
                picked.append(hidden[r, width - len(t) - 1 : width - 1])  # t-1 predicts t
                targets.append(torch.tensor(t))
                wanted.append(torch.full((len(t),), measured[i]))
                parts["text"].append(torch.full((len(t),), i, dtype=torch.long))
                parts["pos"].append(torch.arange(len(t)) + int(shifted[i]))
            states, target, want = torch.cat(picked), torch.cat(targets), torch.cat(wanted)
            probs = torch.full((len(target),), float("nan"))
            ranks = torch.zeros(len(target), dtype=torch.long)
            if want.any():
                on = want.to(states.device)
                probs[want], ranks[want] = _prob_rank(lm, states[on], target.to(states.device)[on])
            parts["probs"].append(probs)
            parts["ranks"].append(ranks)
            parts["states"].append(states.float().cpu())
            parts["ids"].append(target)

    def cat(name: str, empty: torch.Tensor) -> torch.Tensor:
        return torch.cat(parts[name]) if parts[name] else empty

    long0 = torch.zeros(0, dtype=torch.long)
    return TokenStates(
        states=cat("states", torch.zeros(0, d)),
        token_ids=cat("ids", long0),
        probs=cat("probs", torch.zeros(0)),
        ranks=cat("ranks", long0),
        text_index=cat("text", long0),
        position=cat("pos", long0),
    )


@dataclass
class FitStates:
    """States with where each came from: `*_groups` name the text (unique over sources),
    `*_sources` index the sources (0 generated, 1 labelled: `evidence.config.SOURCES`),
    `*_positions` the token's index in its text."""

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
    # What the states were gathered from, recorded by the fit that uses them: the data's hashes,
    # the prompts generated on, the gathering settings, the sampling seed, and the seed of the
    # clean-text draw (which the fit's stability halves and bootstrap reuse).
    data_hashes: dict[str, str] = field(default_factory=dict)
    fit_prompt_indices: list[int] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    split_seed: int = 0
    seconds: float = 0.0  # the gathering's wall time
    # The evidence's judge's reading of the vocabulary, token by token: what says whether a
    # direction promotes toxic words (`scoring.vocabulary`); None when not judged.
    vocabulary: TokenJudgement | None = None

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
            {**self.data_hashes, **other.data_hashes},
            self.fit_prompt_indices + other.fit_prompt_indices,
            self.settings or other.settings,
            self.seed if self.seed is not None else other.seed,
            self.split_seed,
            self.seconds + other.seconds,
            self.vocabulary or other.vocabulary,
        )
