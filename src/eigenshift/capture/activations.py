"""Batched activation capture with left padding, pooling over real tokens."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.errors import InputError
from ..models import Batch, LanguageModel
from ..models.language_model import accepts_logits_to_keep
from .hooks import Site, on_call

Pooling = Literal["max", "mean", "last"]
POOLINGS = ("max", "mean", "last")


def pool(x: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """(batch, tokens, width) -> (batch, width) over non-pad tokens only."""
    keep = mask.bool().unsqueeze(-1)
    if pooling == "max":
        return x.masked_fill(~keep, float("-inf")).amax(dim=1)
    if pooling == "mean":
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
    if pooling == "last":
        return x[:, -1]  # left padding: the last column is every row's last real token
    raise ValueError(f"pooling must be one of {POOLINGS}, not '{pooling}'")


def pool_site(t: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """A site's tensor pooled per text, in float32 on the CPU; a site that flattens the tokens
    (OPT's MLP) is given its (batch, tokens) shape back first."""
    if t.dim() == 2 and t.shape[0] == mask.numel():
        t = t.view(*mask.shape, -1)
    return pool(t.float(), mask, pooling).cpu()


@dataclass
class ActivationBatch:
    indices: list[int]  # positions of these texts in the input list
    values: dict[str, torch.Tensor]  # site -> (batch, width) pooled, float32 on CPU


def iter_activations(
    lm: LanguageModel,
    texts: Sequence[str],
    sites: Sequence[str | Site],
    *,
    pooling: str = "max",
    batch_size: int = 16,
    max_length: int = 128,
    progress: bool = True,
) -> Iterator[ActivationBatch]:
    """Yield pooled activations batch by batch, so callers can stream instead of holding all."""
    if pooling not in POOLINGS:
        raise InputError(f"pooling must be one of {POOLINGS}, not '{pooling}'")
    parsed = [s if isinstance(s, Site) else Site.parse(s) for s in sites]
    modules = [(str(s), lm.module(s.module), s.side) for s in parsed]
    # Sort by length so each batch pads little; results are yielded with their original indices.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="capture", unit="batch", disable=not progress):
        idx = order[start : start + batch_size]
        batch = lm.encode([texts[i] for i in idx], max_length=max_length)
        yield ActivationBatch(idx, _capture_pooled(lm, modules, batch, pooling))


def _capture_pooled(
    lm: LanguageModel, modules: Sequence[tuple[str, nn.Module, str]], batch: Batch, pooling: str
) -> dict[str, torch.Tensor]:
    """One forward pass; each site is pooled inside its hook, so no per-token tensor is kept."""
    pooled: dict[str, torch.Tensor] = {}
    mask = batch.attention_mask

    def record(name: str):
        def fn(t: torch.Tensor) -> None:
            pooled[name] = pool_site(t, mask, pooling)
            if len(pooled) == len(modules):
                raise _Captured  # nothing after the deepest site is needed: skip the rest

        return fn

    with ExitStack() as stack, torch.inference_mode():
        for name, module, side in modules:
            stack.enter_context(on_call(module, record(name), side))
        # Capture never needs the logits: computing one position instead of all saves a
        # (batch, tokens, vocab) tensor, the largest of the pass on big vocabularies.
        extra = {"logits_to_keep": 1} if accepts_logits_to_keep(lm) else {}
        with suppress(_Captured):
            lm.model(**batch.model_inputs(), **extra)
    return pooled


class _Captured(Exception):
    """Raised by the last capture hook to stop the forward pass early."""


def collect_activations(
    lm: LanguageModel, texts: Sequence[str], sites: Sequence[str | Site], **kwargs
) -> dict[str, torch.Tensor]:
    """All pooled activations in input order: site -> (len(texts), width)."""
    out: dict[str, torch.Tensor] = {}
    for batch in iter_activations(lm, texts, sites, **kwargs):
        for name, values in batch.values.items():
            if name not in out:
                out[name] = torch.empty(len(texts), values.shape[-1])
            out[name][batch.indices] = values
    return out
