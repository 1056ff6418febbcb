"""A model run stage by stage from what one ordinary pass captured, so work that several passes
share is done once.

One forward pass records what enters every decoder block (the hidden states and the other
arguments the model gave it: masks, rotary tables), the final norm and the unembedding. A later
pass can start at any stage: the perplexity of an edit that touches block 17 and later reruns 13
of 30 blocks, an edit of the unembedding reruns the head alone, and Linear-AcT's causal fit moves
every text one block at a time instead of running one forward pass per block.

`Trunk.agrees` compares a replay from the first block with the model's own logits, so a family
whose forward does more than blocks, final norm and head (a projection after the norm, a logit
scale) is caught and its caller falls back to whole passes instead of giving wrong numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..models import LanguageModel
from .hooks import Site, hooked

log = logging.getLogger(__name__)

Call = tuple[tuple[Any, ...], dict[str, Any]]  # a block's other positional and keyword arguments


@dataclass
class Entry:
    """One batch's inputs: the hidden states entering each kept stage, and what every block
    was called with besides its hidden states."""

    mask: torch.Tensor  # (batch, tokens) attention mask: which positions are real
    hidden: dict[int, torch.Tensor] = field(default_factory=dict)
    calls: list[Call | None] = field(default_factory=list)


def _hidden_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


class Trunk:
    """The stages of `lm`: its blocks 0..n-1, then `norm` (the final norm, or nothing), then
    `head` (the unembedding, with the family's logit soft-cap)."""

    def __init__(self, lm: LanguageModel) -> None:
        self.lm = lm
        self.blocks: list[nn.Module] = list(lm.module(lm.arch.blocks))  # type: ignore[call-overload]
        self.final_norm = lm.module(lm.arch.final_norm) if lm.arch.final_norm else None
        self.norm, self.head = len(self.blocks), len(self.blocks) + 1

    # -- where an edit starts --------------------------------------------------------------------
    def stage_of(self, module: str) -> int | None:
        """The first stage whose run calls `module`; None when it runs before the blocks (an
        embedding) or outside the stages (then only a whole pass is right)."""
        arch = self.lm.arch
        if module == arch.unembedding:
            return self.head
        if arch.final_norm and module == arch.final_norm:
            return self.norm
        prefix = f"{arch.blocks}."
        if module.startswith(prefix):
            index = module[len(prefix) :].split(".", 1)[0]
            if index.isdigit() and int(index) < len(self.blocks):
                return int(index)
        return None

    def start_of(self, modules: Sequence[str]) -> int | None:
        """The earliest stage an edit of `modules` changes (the head for no edit at all); None
        when some module sits outside the stages."""
        stages = [self.stage_of(module) for module in modules]
        if any(s is None for s in stages):
            return None
        return min((s for s in stages if s is not None), default=self.head)

    # -- capture and replay ----------------------------------------------------------------------
    def capture(
        self, inputs: dict[str, torch.Tensor], keep: set[int], **extra: Any
    ) -> tuple[torch.Tensor, Entry]:
        """One ordinary forward pass (no KV cache; `extra` goes to the model): its logits, and
        the batch's entry holding the hidden states entering the stages in `keep` and every
        block's other arguments."""
        entry = Entry(mask=inputs["attention_mask"], calls=[None] * len(self.blocks))
        with ExitStack() as stack, torch.inference_mode():
            for i, block in enumerate(self.blocks):
                stack.enter_context(hooked(block, self._record_block(entry, i, i in keep),
                                           "input", with_kwargs=True))  # fmt: skip
            for stage, module in ((self.norm, self.final_norm), (self.head, self.lm.unembedding)):
                if stage in keep and module is not None:
                    stack.enter_context(hooked(module, self._record(entry, stage), "input",
                                               with_kwargs=True))  # fmt: skip
            logits = self.lm.model(**inputs, use_cache=False, **extra).logits
        if self.final_norm is None and self.norm in keep:
            entry.hidden[self.norm] = entry.hidden.get(self.head, torch.empty(0))
        return logits, entry

    def _record_block(self, entry: Entry, i: int, keep: bool) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = _hidden_of(args, kwargs)
            if keep:
                entry.hidden[i] = hidden.detach()
            if args:
                entry.calls[i] = (tuple(args[1:]), dict(kwargs))
            else:
                entry.calls[i] = ((), {k: v for k, v in kwargs.items() if k != "hidden_states"})

        return hook

    def _record(self, entry: Entry, stage: int) -> Any:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            entry.hidden[stage] = _hidden_of(args, kwargs).detach()

        return hook

    def run_block(self, entry: Entry, i: int, hidden: torch.Tensor) -> torch.Tensor:
        """Block i on `hidden`, with the arguments the model gave it in the captured pass (and
        any hook installed on it or inside it)."""
        call = entry.calls[i]
        assert call is not None, "the captured pass never reached this block"
        args, kwargs = call
        out = self.blocks[i](hidden, *args, **kwargs)
        return out[0] if isinstance(out, tuple) else out

    def run(self, entry: Entry, start: int) -> torch.Tensor:
        """The logits, from the hidden states that entered stage `start` (kept at capture)."""
        hidden = entry.hidden[start]
        with torch.inference_mode():
            for i in range(start, len(self.blocks)):
                hidden = self.run_block(entry, i, hidden)
            if start <= self.norm and self.final_norm is not None:
                hidden = self.final_norm(hidden)
            logits = self.lm.unembedding(hidden)
            cap = self.lm.logit_softcap
            if cap:
                logits = torch.tanh(logits / cap) * cap
        return logits

    def agrees(self, entry: Entry, logits: torch.Tensor) -> bool:
        """Whether replaying `entry` from the first block gives the model's own `logits` (the
        entry must keep stage 0); logged when not, so the caller's fallback is visible."""
        replayed = self.run(entry, 0).float()
        real = logits.float()
        keep = entry.mask.bool().to(real.device)
        scale = float(real[keep].abs().max().clamp(min=1.0))
        gap = float((replayed - real)[keep].abs().max())
        tolerance = (1e-3 if real.dtype == torch.float32 and logits.dtype == torch.float32
                     else 2e-2) * scale  # fmt: skip
        if gap > tolerance:
            log.warning("replaying %s block by block gives other logits than its forward (max "
                        "gap %.3g): using whole passes", self.lm.arch.family, gap)  # fmt: skip
            return False
        return True


def site_blocks(trunk: Trunk, sites: Sequence[str | Site]) -> list[int] | None:
    """The block each site runs in, when every site is inside a block and they come in block
    order (what a block-by-block walk needs); None otherwise."""
    parsed = [s if isinstance(s, Site) else Site.parse(s) for s in sites]
    stages = [trunk.stage_of(s.module) for s in parsed]
    if any(s is None or s >= trunk.norm for s in stages):
        return None
    blocks = [s for s in stages if s is not None]
    return blocks if blocks == sorted(blocks) else None
