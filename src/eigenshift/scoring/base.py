"""The scorer protocol: a batch of texts in, one toxicity probability per text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Toxicity probabilities in [0, 1], float64, one per text."""
        ...
