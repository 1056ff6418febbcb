"""Which generated token carries a continuation's toxicity: occlusion against the scorer.

Each token is removed in turn and the continuation scored again; the token whose removal lowers
the score most is the toxic token. All occluded variants of a batch go to the scorer at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from .base import Scorer


def token_pieces(tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[int]) -> list[str]:
    """The text each token adds, from prefix decodes, so pieces join to the decoded whole."""
    pieces: list[str] = []
    previous = ""
    for n in range(1, len(token_ids) + 1):
        text = str(tokenizer.decode(list(token_ids[:n]), skip_special_tokens=True))
        pieces.append(text[len(previous) :] if text.startswith(previous) else text)
        previous = text
    return pieces


@dataclass
class Attribution:
    score: float  # the whole continuation's score
    drops: np.ndarray  # score minus the score without token j, per token
    top: int  # index of the token whose removal lowers the score most (-1 when empty)


def occlusion(scorer: Scorer, pieces_per_text: Sequence[Sequence[str]]) -> list[Attribution]:
    variants: list[str] = []
    for pieces in pieces_per_text:
        variants.append("".join(pieces))
        variants.extend(
            "".join(p for k, p in enumerate(pieces) if k != j) for j in range(len(pieces))
        )
    scores = scorer.score(variants) if variants else np.zeros(0)
    out, at = [], 0
    for pieces in pieces_per_text:
        full, rest = float(scores[at]), scores[at + 1 : at + 1 + len(pieces)]
        drops = full - np.asarray(rest, dtype=float)
        out.append(Attribution(full, drops, int(drops.argmax()) if len(drops) else -1))
        at += 1 + len(pieces)
    return out


def attribute_tokens(
    scorer: Scorer, tokenizer: PreTrainedTokenizerBase, token_ids: Sequence[Sequence[int]]
) -> list[Attribution]:
    """Occlusion attribution for generated continuations given as token ids."""
    return occlusion(scorer, [token_pieces(tokenizer, ids) for ids in token_ids])
