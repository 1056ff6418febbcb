"""Which generated token carries a continuation's toxicity: occlusion against the scorer.

Each token is removed in turn and the continuation scored again; the token whose removal lowers
the score most is the toxic token. All occluded variants of a batch go to the scorer at once.
Word-level occlusion (EigenShift's evidence) removes whole words instead, so a toxic word split
into several tokens is found however the tokenizer cuts it, and maps back to all its tokens.
"""

from __future__ import annotations

import re
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


def piece_spans(pieces: Sequence[str]) -> list[tuple[int, int]]:
    """Character span of each piece in their concatenation."""
    spans, at = [], 0
    for piece in pieces:
        spans.append((at, at + len(piece)))
        at += len(piece)
    return spans


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


# A word: letters and digits, with inner apostrophes (punctuation around it is not part of it).
WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
ALONE_TOXIC = 0.5  # a word scored on its own at least this is toxic by itself


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words; a text without letters or digits (":( !!!") is read as
    its whitespace-separated pieces."""
    return [m.span() for m in WORD.finditer(text)] or [m.span() for m in re.finditer(r"\S+", text)]


@dataclass
class WordAttribution:
    score: float  # the whole text's score
    words: list[tuple[int, int]]  # character span of each word
    drops: np.ndarray  # score minus the score without word j
    alone: np.ndarray | None = None  # the score of word j on its own (only when no drop counts)

    def toxic_words(self, min_drop: float) -> list[tuple[int, int]]:
        """Every word whose removal lowers the score by more than `min_drop`. When none does
        (two insults, each enough on its own, hide each other), the words toxic on their own."""
        hits = [w for w, drop in zip(self.words, self.drops, strict=True) if drop > min_drop]
        if not hits and self.alone is not None:
            hits = [w for w, s in zip(self.words, self.alone, strict=True) if s >= ALONE_TOXIC]
        return hits


def attribute_words(
    scorer: Scorer, texts: Sequence[str], min_drop: float = 0.1, max_words: int = 128
) -> list[WordAttribution]:
    """Word-level occlusion: each word (of the first `max_words`) removed in turn, every variant
    scored in one call; texts where no removal drops the score by `min_drop` get each word
    scored alone in a second call. A word of several tokens is judged once, whole."""
    spans = [word_spans(t)[:max_words] for t in texts]
    variants: list[str] = []
    for text, words in zip(texts, spans, strict=True):
        variants.append(text)
        variants.extend(text[:a] + text[b:] for a, b in words)
    scores = np.asarray(scorer.score(variants), dtype=float) if variants else np.zeros(0)
    out, at = [], 0
    for words in spans:
        full = float(scores[at])
        out.append(WordAttribution(full, words, full - scores[at + 1 : at + 1 + len(words)]))
        at += 1 + len(words)
    hidden = [(a, text) for a, text in zip(out, texts, strict=True)
              if a.words and not (a.drops > min_drop).any()]  # fmt: skip
    alone = [text[s:e] for a, text in hidden for s, e in a.words]
    scores = np.asarray(scorer.score(alone), dtype=float) if alone else np.zeros(0)
    at = 0
    for a, _ in hidden:
        a.alone, at = scores[at : at + len(a.words)], at + len(a.words)
    return out


def tokens_in(
    token_spans: Sequence[tuple[int, int]], words: Sequence[tuple[int, int]]
) -> list[int]:
    """Indices of the tokens that overlap any of the words' character spans."""
    return [i for i, (a, b) in enumerate(token_spans)
            if b > a and any(a < wb and wa < b for wa, wb in words)]  # fmt: skip
