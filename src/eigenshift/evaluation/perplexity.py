"""Per-sequence negative log-likelihood in batches, padding never counted.

One function serves both perplexity on clean text (every token after the first is scored) and
the perplexity of generated continuations given their prompt (only continuation tokens scored).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models import LanguageModel, positions_from_mask
from ..models.language_model import head_chars


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
    pad = lm.tokenizer.pad_token_id or 0
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
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
        ids, mask, scored = ids.to(lm.device), mask.to(lm.device), scored.to(lm.device)
        with torch.inference_mode():
            logits = lm.model(
                input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)
            ).logits
            nll = F.cross_entropy(
                logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none"
            )
            target = scored[:, 1:].float()
            per_row = (nll * target).sum(1) / target.sum(1).clamp(min=1)
        for r, i in enumerate(rows):
            if bool(scored[r, 1:].any()):
                out[i] = float(per_row[r])
    return out


def perplexities(
    lm: LanguageModel,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 8,
    progress: bool = False,
) -> np.ndarray:
    """exp(mean token cross-entropy) per text (method.md: sentences of at most 128 tokens)."""
    enc = lm.tokenizer(head_chars(texts, max_length), truncation=True,
                       max_length=max_length)["input_ids"]  # fmt: skip
    nll = sequence_nll(lm, enc, [1] * len(enc), batch_size=batch_size, progress=progress)
    return np.exp(nll)
