"""VADER (vaderSentiment's rule-based lexicon, shipped in its package): a sentiment scorer that
runs offline, for the sentiment behaviour. Its compound score lies in [-1, 1], and its authors
call a text negative at compound <= -0.05 and positive at >= 0.05; the scorer maps compound to
[0, 1] through a logistic whose midpoint is that cut, so the usual threshold 0.5 means what VADER
means and a neutral text (compound 0) scores below it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..core.errors import ScorerError

CUT, SLOPE = 0.05, 10.0  # VADER's own cut; slope: compound -0.5 -> 0.99, 0 -> 0.38


class VaderScorer:
    def __init__(self, side: Literal["negative", "positive"] = "negative") -> None:
        if side not in ("negative", "positive"):
            raise ScorerError(f"vader:{side}: the side is negative or positive")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()
        self.side = side
        self.name = f"vader:{side}"

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """The probability-like score of each text being on `side`."""
        compound = np.array([self.analyzer.polarity_scores(str(t))["compound"] for t in texts],
                            dtype=np.float64)  # fmt: skip
        toward = -compound if self.side == "negative" else compound
        return 1.0 / (1.0 + np.exp(-SLOPE * (toward - CUT)))
