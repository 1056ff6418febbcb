"""The scorer protocol: a batch of texts in, one toxicity probability per text out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    """A scorer may also have `vocabulary`, a `str -> bool` of the words it can read: fluency
    checks count the words it cannot (`vocabulary_of` gives a stand-in for scorers without)."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Toxicity probabilities in [0, 1], float64, one per text."""
        ...


def vocabulary_of(scorer: Scorer) -> Callable[[str], bool]:
    """The scorer's own vocabulary; for scorers without one, the Jigsaw BiLSTM's 20,000 common
    English words as a stand-in wordlist."""
    known = getattr(scorer, "vocabulary", None)
    if known is not None:
        return known
    from .bilstm import jigsaw_vocabulary

    return jigsaw_vocabulary()
