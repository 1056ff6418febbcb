"""The settings of the studies (`sweep`, `tune`, `demo`), free of torch so their commands are
generated and refuse bad values at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..core.errors import InputError
from ..core.settings import check_settings, setting
from ..engines.config import ChatTemplate
from ..interventions.eigenshift.config import Recipe
from ..models.options import DType


@dataclass(frozen=True)
class SweepConfig:
    # EigenShift's fields this study's grid sets (the rest are the fit's options)
    grid_fields: ClassVar[tuple[str, ...]] = ("k", "k_fraction", "alpha", "recipe")

    ks: tuple[int, ...] = setting((), "EigenShift k values (with --alpha; leave both out to "
                                      "sweep only --with).", flag="--k", minimum=0)  # fmt: skip
    alphas: tuple[float, ...] = setting((), "EigenShift alpha values (at most 1).",
                                        flag="--alpha", maximum=1)  # fmt: skip
    recipes: tuple[Recipe, ...] = setting(("matched",), "EigenShift recipes, each fitted once.",
                                       flag="--recipe")  # fmt: skip
    strengths: tuple[float, ...] = setting((), "Strengths for the --with folders of methods "
                                               "that have one (steer, linear-act).",
                                           flag="--strength")  # fmt: skip
    ppl_limit: float = setting(0.10, "Largest relative perplexity rise the chosen operating "
                                     "point may have.", minimum=0)  # fmt: skip

    def __post_init__(self) -> None:
        if bool(self.ks) != bool(self.alphas):
            raise InputError("give --k and --alpha together (or neither, to sweep --with only)")
        check_settings(self)


@dataclass(frozen=True)
class TuneConfig:
    grid_fields: ClassVar[tuple[str, ...]] = ("k", "k_fraction", "alpha")

    validation_prompts: int = setting(60, "Validation prompts the grid runs on.", minimum=2)
    test_prompts: int = setting(200, "Test prompts, disjoint from the validation ones, the chosen "
                                     "points are evaluated on once.", minimum=2)  # fmt: skip
    validation_samples: int = setting(2, "Continuations per validation prompt.", minimum=1)
    # Measured on the default model (docs/results.md, issue 12): beyond k = 2 or below alpha = 0
    # perplexity rises past +20%, so the grid spends its points where the rule can be met.
    ks: tuple[int, ...] = setting((1, 2, 4, 8), "EigenShift k values.", flag="--k", minimum=1)
    alphas: tuple[float, ...] = setting((0.5, 0.0), "EigenShift alpha values (at most 1).",
                                        flag="--alpha", maximum=1)  # fmt: skip
    strengths: tuple[float, ...] = setting((0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0),
                                           "Strengths of methods that have one (steering, "
                                           "Linear-AcT).", flag="--strength")  # fmt: skip
    ppl_limit: float = setting(0.10, "Largest relative perplexity rise a chosen point may have.",
                               minimum=0)  # fmt: skip
    every_point: bool = setting(False, "Measure every validation point's perplexity, not only "
                                       "those the rule could choose (same choice, slower).",
                                flag="--every-point")  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class DemoConfig:
    quick: bool = setting(False, "A smoke run (about five minutes on two cores).", flag="--quick")
    model: str = setting("default", "The model: hub id, folder, .gguf file or embedded name.",
                         short="-m")  # fmt: skip
    behaviour: str = setting("toxicity", "The behaviour: toxicity, sentiment, stereotypes, or a "
                                         ".json/.yaml file describing one.")  # fmt: skip
    out: Path | None = setting(None, "Run folder (default: runs/demo, runs/demo-NAME for "
                                     "another behaviour); a rerun resumes it and reuses its "
                                     "fits.")  # fmt: skip
    baselines: bool = setting(True, "Also fit and evaluate AurA, Det-0, Damp, steering and "
                                    "Linear-AcT.")  # fmt: skip
    chat_template: ChatTemplate = setting(
        "none", "Prompt through the tokenizer's chat template, in the fit and the evaluation: "
        "none, user (the prompt is the user's turn), assistant (it starts the reply).")
    dtype: DType = setting("fast", "Weight dtype; fast: bfloat16 where the CPU or GPU computes "
                                   "it natively, else float32 (docs/results.md compares the "
                                   "two).")  # fmt: skip

    @property
    def folder(self) -> Path:
        """`out`, else runs/demo (toxicity) or runs/demo-NAME: one behaviour's run never
        resumes into another's."""
        if self.out is not None:
            return Path(self.out)
        name = Path(self.behaviour).stem if self.behaviour != "toxicity" else ""
        return Path("runs/demo" + (f"-{name}" if name else ""))
