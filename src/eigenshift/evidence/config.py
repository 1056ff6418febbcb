"""What a fit's evidence is gathered from, free of torch: the sources (labelled text, the model's
own continuations, or both), the labelled data and prompts, the scorer that finds the toxic words,
and the rule that keeps a toxic token (`EvidenceRule`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..core.settings import check_settings, setting
from ..data.labelled import Layout
from ..engines.config import SamplingConfig

SOURCES = ("generated", "labelled")
Evidence = Literal["generated", "labelled", "both"]


@dataclass(frozen=True)
class EvidenceRule:
    """Which tokens of a toxic text become toxic states, and how much text is read."""

    attribution_drop: float = setting(0.1, "A word carries toxicity when removing it lowers the "
                                           "scorer's score by more than this.",
                                      minimum=0, maximum=1)  # fmt: skip
    max_rank: int = setting(10, "A toxic token counts when the model ranks it at most this "
                                "(1: the argmax only) ...", minimum=1)  # fmt: skip
    min_prob: float = setting(0.05, "... or gives it at least this probability.", minimum=0,
                              maximum=1)  # fmt: skip
    max_tokens: int = setting(64, "Tokens read of each labelled text.", minimum=2)
    # 10,000 (docs/results.md, issue 12): on the default model it selects the same directions
    # with the same stability as 40,000, in half the fit time.
    clean_budget: int = setting(10_000, "Clean states drawn per source (whole texts, seeded).",
                                minimum=1)  # fmt: skip
    split_seed: int = setting(0, "Seed of the clean-text draw, the stability halves and the "
                                 "bootstrap.", minimum=0)  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class EvidenceConfig:
    evidence: Evidence = setting("labelled", "Where the states come from: the model's own "
                                 "continuations of prompts, labelled text, or both.")  # fmt: skip
    data: str = setting("default", "Labelled texts (CSV/JSONL/HF id); default: the insults data.")
    text_column: str | None = setting(None, "Column of the labelled texts holding the text.")
    label_column: str | None = setting(None, "Column of the labelled texts holding the label.")
    layout: Layout | None = setting(None, "A known layout of the labelled texts.")
    max_texts: int | None = setting(None, "A stratified, seeded subsample of the labelled texts.",
                                    minimum=2)  # fmt: skip
    prompts: str = setting("default", "Prompts to generate on (RTP jsonl, CSV, HF id).")
    fit_prompts: int = setting(300, "Prompts generated on to collect states.", minimum=1)
    prompt_seed: int = setting(0, "Seed of the prompt shuffle.", minimum=0)
    sampling: SamplingConfig = setting(SamplingConfig(greedy=True))
    rule: EvidenceRule = setting(EvidenceRule())
    scorer: str = setting("default", "Scorer of the fit texts (attribution, and continuations).")
    threshold: float = setting(0.5, "A continuation is toxic when its score is at least this.",
                               minimum=0, maximum=1)  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)

    def uses(self, source: str) -> bool:
        return self.evidence in (source, "both")
