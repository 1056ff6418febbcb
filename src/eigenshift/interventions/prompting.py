"""The prompting baseline: an instruction before every prompt, the cheapest thing a user can try
and a strong baseline in recent steering benchmarks. No weight changes; the evaluation reads the
instruction wherever the model reads text (generation, clean-text perplexity conditioned on it,
lm-eval's system instruction), so it is compared on the same prompts, scorer and seeds as the
edits. It cannot be exported as weights: a deployment puts the instruction before its prompts.
"""

from __future__ import annotations

from typing import Self

from ..core.errors import ArtifactError
from ..models import LanguageModel
from .base import FitInputs, Intervention, Shapes, register
from .configs import PromptConfig
from .edits import Edit


@register
class Prompting(Intervention):
    """prompt: place an instruction before every prompt (no weight changes)."""

    method = "prompt"
    config_class = PromptConfig

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: PromptConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        # The tokenizer is what the instruction depends on; the unembedding's hash ties the
        # artifact to this model like every other method's.
        params = {"instruction": config.instruction, "separator": config.separator}
        return cls({}, cls.new_meta(lm, params, [lm.arch.unembedding]))

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        if not self.param("instruction", str).strip():
            raise ArtifactError("this 'prompt' artifact's instruction is empty: fit it again")
        self.param("separator", str)
        return {}

    @property
    def prefix(self) -> str:
        return str(self.params["instruction"]) + str(self.params["separator"])

    def edits(self, lm: LanguageModel) -> list[Edit]:
        return []

    def describe(self, lm: LanguageModel) -> str:
        return f"prompt: {self.params['instruction']!r} before every prompt"
