"""Per-sequence negative log-likelihood in batches, padding never counted.

One function serves both perplexity on clean text (every token after the first is scored) and
the perplexity of generated continuations given their prompt (only continuation tokens scored).
`shared_perplexities` scores many methods on the same texts: one ordinary pass keeps what enters
the stages the methods change (`replay.Trunk`), and each method reruns only the stages from its
first edit on (the head alone for EigenShift).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..interventions import Intervention
from ..models import LanguageModel, positions_from_mask
from ..models.language_model import accepts_logits_to_keep, head_chars
from ..replay import Entry, Trunk

log = logging.getLogger(__name__)


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
    pad = lm.tokenizer.pad_token_id or 0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [i for i in order[start : start + batch_size] if len(sequences[i]) >= 2]
        if not rows:
            continue
        width = max(len(sequences[i]) for i in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        scored = torch.zeros((len(rows), width), dtype=torch.bool)
        for r, i in enumerate(rows):
            seq = list(sequences[i])
            offset = width - len(seq)
            ids[r, offset:] = torch.tensor(seq)
            mask[r, offset:] = 1
            scored[r, offset + max(score_from[i], 1) :] = True
        batches.append(_Batch(rows, ids.to(lm.device), mask.to(lm.device), scored.to(lm.device)))
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


def _applied(
    lm: LanguageModel, iv: Intervention | None
) -> contextlib.AbstractContextManager[object]:
    return iv.applied(lm) if iv is not None else contextlib.nullcontext()


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
    enc = _encode(lm, texts, max_length)
    batches = _batches(lm, enc, [1] * len(enc), batch_size)
    trunk = Trunk(lm)
    starts = {name: trunk.start_of(iv) for name, iv in methods}
    keep = {s for s in starts.values() if s is not None} | {0}
    t0 = time.perf_counter()
    original = np.full(len(texts), np.nan)
    entries: list[Entry] = []
    checked = False
    for batch in tqdm(batches, desc="perplexity (shared pass)", unit="batch",
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
        elif start is None:
            values = np.full(len(texts), np.nan)
            with _applied(lm, iv):
                for batch in tqdm(batches, desc=f"perplexity {name}", unit="batch",
                                  disable=not progress):  # fmt: skip
                    with torch.inference_mode():
                        _store(values, batch, lm.model(**batch.inputs()).logits)
        else:
            values = np.full(len(texts), np.nan)
            with _applied(lm, iv):
                for batch, entry in tqdm(list(zip(batches, entries, strict=True)),
                                         desc=f"perplexity {name}", unit="batch",
                                         disable=not progress):  # fmt: skip
                    _store(values, batch, trunk.run(entry, start))
        yield name, np.exp(values), time.perf_counter() - t0 + first_pass
        first_pass = 0.0

