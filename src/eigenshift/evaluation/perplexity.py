"""Per-sequence negative log-likelihood in batches, padding never counted.

One function serves both perplexity on clean text (every token after the first is scored) and
the perplexity of generated continuations given their prompt (only continuation tokens scored).
`shared_perplexities` scores many methods on the same texts: one ordinary pass keeps what enters
the stages the methods change (`replay.Trunk`), and each method reruns only the stages from its
first edit on (the head alone for EigenShift).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import DynamicCache

from ..capture.replay import Entry, Trunk
from ..interventions import Intervention, applied_or_not
from ..models import LanguageModel, positions_from_mask
from ..models.language_model import accepts_logits_to_keep, cache_argument, head_chars


@dataclass
class _Batch:
    rows: list[int]  # which sequences, in this batch's row order
    ids: torch.Tensor
    mask: torch.Tensor
    scored: torch.Tensor  # (batch, tokens) tokens whose NLL counts

    def inputs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids, "attention_mask": self.mask,
                "position_ids": positions_from_mask(self.mask)}  # fmt: skip


def _batches(
    lm: LanguageModel, sequences: Sequence[Sequence[int]], score_from: Sequence[int],
    batch_size: int,
) -> list[_Batch]:  # fmt: skip
    """Left-padded, length-sorted batches of the sequences with at least two tokens."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [i for i in order[start : start + batch_size] if len(sequences[i]) >= 2]
        if not rows:
            continue
        padded = lm.pad([sequences[i] for i in rows])
        width = padded.input_ids.shape[1]
        scored = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, i in enumerate(rows):
            scored[r, width - len(sequences[i]) + max(score_from[i], 1) :] = True
        batches.append(_Batch(rows, padded.input_ids, padded.attention_mask,
                              scored.to(lm.device)))  # fmt: skip
    return batches


def _store(out: np.ndarray, batch: _Batch, logits: torch.Tensor) -> None:
    """Mean NLL of each row's scored tokens into `out` (rows with none stay nan)."""
    # Rows of the vocabulary kept contiguous: cross-entropy over a transposed (batch, vocab,
    # tokens) view runs about 3x slower on CPUs, and this is most of a small model's pass.
    rows, vocab = logits.shape[0], logits.shape[-1]
    flat = logits[:, :-1].float().reshape(-1, vocab)
    nll = F.cross_entropy(flat, batch.ids[:, 1:].reshape(-1), reduction="none").view(rows, -1)
    target = batch.scored[:, 1:].float()
    per_row = (nll * target).sum(1) / target.sum(1).clamp(min=1)
    for r, i in enumerate(batch.rows):
        if bool(batch.scored[r, 1:].any()):
            out[i] = float(per_row[r])


def sequence_nll(
    lm: LanguageModel,
    sequences: Sequence[Sequence[int]],
    score_from: Sequence[int],
    *,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "perplexity",
) -> np.ndarray:
    """Mean NLL (nats/token) of tokens at index >= score_from[i] (and >= 1) of each sequence; nan
    where no token is scored. Sequences are left-padded in length-sorted batches."""
    out = np.full(len(sequences), np.nan)
    only_last = accepts_logits_to_keep(lm)
    for batch in tqdm(_batches(lm, sequences, score_from, batch_size), desc=desc, unit="batch",
                      disable=not progress):  # fmt: skip
        # Left padding puts every scored token among the last columns: the head and the
        # cross-entropy run on those alone (a continuation's prompt needs no logits).
        first = int(batch.scored.float().argmax(1).min()) if bool(batch.scored.any()) else 0
        keep = batch.ids.shape[1] - max(first - 1, 0)
        extra = {"logits_to_keep": keep} if only_last and keep < batch.ids.shape[1] else {}
        with torch.inference_mode():
            logits = lm.model(**batch.inputs(), **extra).logits
        _store(out, _last(batch, logits.shape[1]), logits)
    return out


def _last(batch: _Batch, columns: int) -> _Batch:
    """The batch's last `columns` token columns (what logits kept for the last positions
    score); the same batch when it has no more."""
    if columns >= batch.ids.shape[1]:
        return batch
    return _Batch(batch.rows, batch.ids[:, -columns:], batch.mask[:, -columns:],
                  batch.scored[:, -columns:])  # fmt: skip


def _encode(lm: LanguageModel, texts: Sequence[str], max_length: int) -> list[list[int]]:
    return lm.tokenizer(head_chars(texts, max_length), truncation=True,
                        max_length=max_length)["input_ids"]  # fmt: skip


def scorable(lm: LanguageModel, texts: Sequence[str], max_length: int) -> int:
    """How many texts have a token to score (two at least: the first is only read)."""
    return sum(len(ids) >= 2 for ids in _encode(lm, texts, max_length))


def perplexities(
    lm: LanguageModel,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
    """exp(mean token cross-entropy) per text (method.md: sentences of at most 128 tokens)."""
    enc = _encode(lm, texts, max_length)
    nll = sequence_nll(lm, enc, [1] * len(enc), batch_size=batch_size, progress=progress)
    return np.exp(nll)


def after_prefix(
    lm: LanguageModel, prefix: str, encoded: Sequence[Sequence[int]]
) -> tuple[list[list[int]], list[int]]:
    """Each text's tokens after the tokens of `prefix`, and where scoring starts, so that exactly
    the tokens `perplexities` scores without a prefix are scored (a beginning-of-sequence token
    the tokenizer adds stays at the very start, once)."""
    head = list(lm.tokenizer(prefix)["input_ids"])
    bos = lm.tokenizer.bos_token_id
    sequences, score_from = [], []
    for ids in encoded:
        leading = bos is not None and len(ids) > 0 and ids[0] == bos and head[:1] == [bos]
        body = list(ids[1:]) if leading else list(ids)
        sequences.append(head + body)
        score_from.append(len(head) + (0 if leading else 1))
    return sequences, score_from


def shared_perplexities(
    lm: LanguageModel,
    texts: Sequence[str],
    methods: Sequence[tuple[str, Intervention | None]],
    *,
    max_length: int = 128,
    batch_size: int = 8,
    progress: bool = False,
    wanted: Callable[[str], bool] = lambda _name: True,
) -> Iterator[tuple[str, np.ndarray, float]]:
    """(name, per-text perplexity, seconds) for each method, as each is done, in order; equal to
    `perplexities` under each method's edit. `wanted(name)`, asked just before a method, can
    skip it. The first ordinary pass is the unmodified model's and is charged to the first
    method."""
    if not methods:
        return
    enc = _encode(lm, texts, max_length)
    batches = _batches(lm, enc, [1] * len(enc), batch_size)
    trunk = Trunk(lm)
    starts: dict[str, int | None] = {name: trunk.start_of(edited_modules(iv, lm))
                                     for name, iv in methods}  # fmt: skip
    keep = {s for s in starts.values() if s is not None} | {0}
    # The shared pass pays off when the original is asked for or some edit starts after the
    # first block; otherwise every method takes a whole pass of its own.
    shared = any(iv is None or starts[name] for name, iv in methods)
    if not shared:
        starts = dict.fromkeys(starts)
    t0 = time.perf_counter()
    original = np.full(len(texts), np.nan)
    entries: list[Entry] = []
    checked = False
    for batch in tqdm(batches if shared else [], desc="perplexity (shared pass)", unit="batch",
                      disable=not progress):  # fmt: skip
        logits, entry = trunk.capture(batch.inputs(), keep)
        _store(original, batch, logits)
        entries.append(entry)
        if not checked:
            checked = True
            replays = any(iv is not None and s is not None for (_, iv), s in
                          zip(methods, starts.values(), strict=True))  # fmt: skip
            if replays and not trunk.agrees(entry, logits):
                starts = dict.fromkeys(starts)  # this family cannot be replayed: whole passes
    first_pass = time.perf_counter() - t0
    for name, iv in methods:
        if iv is not None and not wanted(name):
            continue
        t0 = time.perf_counter()
        start = starts[name]
        if iv is None:
            values = original
        elif iv.prefix:  # the same tokens scored, each text read after the method's prefix
            sequences, score_from = after_prefix(lm, iv.prefix, enc)
            with applied_or_not(iv, lm):
                values = sequence_nll(lm, sequences, score_from, batch_size=batch_size,
                                      progress=progress, desc=f"perplexity {name}")  # fmt: skip
        elif start is None:
            values = np.full(len(texts), np.nan)
            with applied_or_not(iv, lm):
                for batch in tqdm(batches, desc=f"perplexity {name}", unit="batch",
                                  disable=not progress):  # fmt: skip
                    with torch.inference_mode():
                        _store(values, batch, lm.model(**batch.inputs()).logits)
        else:
            values = np.full(len(texts), np.nan)
            with applied_or_not(iv, lm):
                for batch, entry in tqdm(list(zip(batches, entries, strict=True)),
                                         desc=f"perplexity {name}", unit="batch",
                                         disable=not progress):  # fmt: skip
                    _store(values, batch, trunk.run(entry, start))
        yield name, np.exp(values), time.perf_counter() - t0 + first_pass
        first_pass = 0.0


def continuation_nll(
    lm: LanguageModel,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """Mean NLL (nats/token) of each continuation after its prompt: what `sequence_nll` gives on
    prompt + continuation scored from the continuation on, but a prompt that several rows share
    (the samples of one prompt, next to each other) runs once and its KV cache is copied to
    them, and only continuation positions get logits. nan for an empty continuation."""
    out = np.full(len(prompts), np.nan)
    for start in range(0, len(prompts), batch_size):
        rows = [i for i in range(start, min(start + batch_size, len(prompts)))
                if continuations[i]]  # fmt: skip
        if rows:
            _continuation_batch(lm, prompts, continuations, rows, out)
    return out


@torch.inference_mode()
def _continuation_batch(
    lm: LanguageModel,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    rows: list[int],
    out: np.ndarray,
) -> None:
    distinct = list(dict.fromkeys(tuple(prompts[i]) for i in rows))
    slot = {p: k for k, p in enumerate(distinct)}
    spread = torch.tensor([slot[tuple(prompts[i])] for i in rows], device=lm.device)
    batch = lm.pad(distinct)
    cache = DynamicCache(config=lm.model.config)
    extra: dict[str, object] = {cache_argument(lm): cache}
    if accepts_logits_to_keep(lm):
        extra["logits_to_keep"] = 1
    first = lm.model(**batch.model_inputs(), use_cache=True, **extra).logits[:, -1][spread]
    cache.reorder_cache(spread)  # type: ignore[arg-type]  # a LongTensor
    width = max(len(continuations[i]) for i in rows)
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    real = torch.zeros((len(rows), width), dtype=torch.long)
    for r, i in enumerate(rows):
        ids[r, : len(continuations[i])] = torch.tensor(list(continuations[i]))
        real[r, : len(continuations[i])] = 1
    ids, real = ids.to(lm.device), real.to(lm.device)
    mask = torch.cat([batch.attention_mask[spread], real], dim=1)
    positions = batch.position_ids[spread][:, -1:] + 1 + torch.arange(width, device=lm.device)
    logits = lm.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                      use_cache=True, **{cache_argument(lm): cache}).logits  # fmt: skip
    # token 0 is predicted by the prompt's last position, token j by continuation position j-1
    predict = torch.cat([first.unsqueeze(1), logits[:, :-1]], dim=1).float()
    vocab = predict.shape[-1]
    nll = F.cross_entropy(predict.reshape(-1, vocab), ids.reshape(-1),
                          reduction="none").view(len(rows), width)  # fmt: skip
    per_row = (nll * real).sum(1) / real.sum(1)
    for r, i in enumerate(rows):
        out[i] = float(per_row[r])


def edited_modules(intervention: Intervention | None, lm: LanguageModel) -> list[str]:
    """The modules `intervention` edits (none for the original model), checked against `lm`."""
    if intervention is None:
        return []
    return [edit.site.module for edit in intervention.checked_edits(lm)]
