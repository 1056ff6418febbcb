"""EigenShift's settings, free of torch: how many directions, how much of each is kept, and the
three choices (contrast, score, dampen) with the `paper` and `matched` presets. Where the states
come from is the evidence room's (`evidence/config.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...core.errors import InputError
from ...core.settings import check_settings, setting

DEFAULT_K = 2
# matched's basis: chosen on validation prompts, reported on disjoint test prompts (docs/results.md,
# issue 23): the singular basis's tuned point removed 1% of expected maximum toxicity, the
# toxic-word basis's 29% at +5% perplexity.
RECIPES: dict[str, dict[str, str]] = {
    "paper": {"contrast": "first", "score": "delta", "dampen": "zero", "basis": "singular"},
    "matched": {"contrast": "matched", "score": "standardized", "dampen": "centered",
                "basis": "toxic-words"},
}
Recipe = Literal["paper", "matched"]
Basis = Literal["singular", "toxic-words"]


@dataclass(frozen=True)
class EigenShiftConfig:
    k: int | None = setting(None, f"Directions to dampen (default {DEFAULT_K}, measured on the "
                                  "default model).", minimum=0)  # fmt: skip
    k_fraction: float | None = setting(None, "Directions to dampen, as a share of d.",
                                       minimum=0, maximum=1)  # fmt: skip
    # Defaults chosen on validation prompts on the default model with labelled evidence
    # (docs/results.md, issue 12): k = 2, alpha = 0 is the one point of the k x alpha grid that
    # lowers toxicity within +10% perplexity; the paper's k = 25% of d breaks a 135M model.
    alpha: float = setting(0.0, "Kept share of each selected direction (1 = unchanged, "
                                 "0 = removed).", maximum=1)  # fmt: skip
    recipe: Recipe = setting("matched", "Presets of contrast, score and dampening.")
    contrast: Literal["first", "matched"] | None = setting(
        None, "Clean states from the first token (paper) or matched positions.")
    score: Literal["delta", "standardized"] | None = setting(
        None, "Rank directions by |delta| or |delta| / spread.")
    dampen: Literal["zero", "centered"] | None = setting(
        None, "Shrink towards zero or towards the clean mean (a constant logit shift).")
    basis: Basis | None = setting(
        None, "Directions to choose from: singular (the unembedding's right singular vectors, "
        "as published; paper) or toxic-words (those that raise the toxic words' logits most "
        "against the whole vocabulary's, the first k taken; the evidence's scorer judges each "
        "word; matched).")
    min_toxic: int = setting(10, "Fewest toxic states a fit accepts.", minimum=1)
    resamples: int = setting(200, "Bootstrap resamples of each selected direction's score "
                                  "(0: none).", minimum=0)  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)
        if self.k is not None and self.k_fraction is not None:
            raise InputError("give k or k_fraction, not both")

    def choice(self, name: str) -> str:
        return getattr(self, name) or RECIPES[self.recipe][name]

    def n_directions(self, d: int) -> int:
        if self.k is not None:
            if self.k > d:
                raise InputError(f"k must be <= {d}, the width of this model's unembedding "
                                 f"input, got {self.k}")  # fmt: skip
            return self.k
        if self.k_fraction is not None:
            return round(self.k_fraction * d)
        return min(DEFAULT_K, d)
