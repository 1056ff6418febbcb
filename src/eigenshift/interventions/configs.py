"""The settings of AurA, Det-0, Damp, mean-difference steering, Linear-AcT, LinEAS, ProFS,
prompting, stacks and the identity control: free of torch, so `eigenshift fit METHOD --help` and
a refused setting answer at once (EigenShift's own config is `eigenshift/config.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..core.errors import InputError
from ..core.settings import check_settings, setting

Score = Literal["auroc", "auroc_length_matched"]


@dataclass(frozen=True)
class ExpertConfig:
    k: int | None = setting(None, "Units to edit (default: AurA every unit above 0.5, else the "
                                  "top 1%).", minimum=0)  # fmt: skip
    k_fraction: float | None = setting(None, "k as a share of all scored units.", minimum=0,
                                       maximum=1)  # fmt: skip
    alpha: float | None = setting(None, "Damp's factor (default 0.5); AurA and Det-0 take none.")
    score: Score = setting("auroc", "Which neuron score ranks the units.")

    def __post_init__(self) -> None:
        check_settings(self)
        if self.k is not None and self.k_fraction is not None:
            raise InputError("give k or a k fraction, not both")
        if self.k_fraction is not None and not 0 < self.k_fraction <= 1:
            raise InputError(f"k fraction must be in (0, 1], got {self.k_fraction}")


@dataclass(frozen=True)
class SteeringConfig:
    layer: int | None = setting(None, "Block whose output is steered (default: at 60% of the "
                                      "depth; negative counts from the end).")  # fmt: skip
    strength: float = setting(1.0, "Multiple of (mean clean - mean toxic) added.")
    batch_size: int = setting(16, "Texts per forward pass.", minimum=1)
    max_length: int = setting(128, "Tokens kept per text.", minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class ProjectionConfig:
    k: int = setting(2, "Toxic directions projected out of each layer's MLP output (ProFS's "
                        "default for GPT-2 medium; 10 for its 7B models).", minimum=1)  # fmt: skip
    first_layer: float = setting(0.4, "First edited block as a share of the depth (ProFS edits "
                                      "10-23 of GPT-2 medium's 24, 15-31 of Mistral's 32).",
                                 minimum=0, maximum=1)  # fmt: skip
    last_layer: float = setting(1.0, "Blocks up to this share of the depth are edited "
                                     "(exclusive).", minimum=0, maximum=1)  # fmt: skip
    centering: bool = setting(True, "Remove the clean texts' top singular direction (the "
                                    "corpus-wide one) before the SVD.",
                              flag="--centering/--no-centering")  # fmt: skip
    strength: float = setting(1.0, "Share of each toxic direction removed (1: ProFS's "
                                   "W <- (I - P) W).")  # fmt: skip
    batch_size: int = setting(16, "Texts per forward pass.", minimum=1)
    max_length: int = setting(128, "Tokens kept per text.", minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.first_layer >= self.last_layer:
            raise InputError(f"first_layer ({self.first_layer}) must be below last_layer "
                             f"({self.last_layer})")  # fmt: skip


@dataclass(frozen=True)
class TransportConfig:
    sites: str | None = setting(None, "Module-name pattern (fnmatch); default: the MLP units.")
    side: Literal["input", "output"] = setting("input", "Edit the sites' inputs or outputs.")
    mode: Literal["linear", "mean"] = setting("linear", "mean: Mean-AcT (w = 1).")
    strength: float = setting(1.0, "lambda: 0 leaves the model, 1 maps fully.")
    support: Literal["source", "all"] = setting(
        "source", "Map only inside the toxic activations' range, or everywhere."
    )
    causal: bool = setting(True, "Fit each layer with the earlier layers' maps applied.")
    batch_size: int = setting(16, "Texts per forward pass.", minimum=1)
    max_length: int = setting(128, "Tokens kept per text.", minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)


# A description of the text to come, not a command (a base model continues text and follows no
# instructions; an instruction-tuned one reads it as well), naming only what the text is: on
# validation prompts every wording raised toxicity on the default model, one that also named what
# to avoid ("no insults, profanity, ...") the most, +18% against +7% (docs/results.md).
DEFAULT_INSTRUCTION = "The following text is polite, kind and respectful."


@dataclass(frozen=True)
class PromptConfig:
    instruction: str = setting(DEFAULT_INSTRUCTION, "Text placed before every prompt (then a "
                                                    "blank line); inside the chat template's "
                                                    "user message when one is used.")
    separator: str = setting("\n\n", "What joins the instruction to the prompt.")

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.instruction.strip():
            raise InputError("instruction must not be empty: it is the whole method")


@dataclass(frozen=True)
class StackConfig:
    strength: float | None = setting(None, "The last member's strength, where it has one "
                                           "(default: as fitted); what `tune` varies.")  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class LineasConfig:
    sites: str | None = setting(None, "Module-name pattern (fnmatch); default: the MLP units, as "
                                      "Linear-AcT's.")  # fmt: skip
    side: Literal["input", "output"] = setting("input", "Edit the sites' inputs or outputs.")
    strength: float = setting(1.0, "lambda: 0 leaves the model, 1 applies the learned maps.")
    samples: int = setting(32, "Texts per side (toxic, non-toxic) the maps are fitted on "
                               "(LinEAS: 32 + 32).", minimum=4)  # fmt: skip
    steps: int = setting(200, "Optimisation steps (Adam, cosine-annealed learning rate).",
                         minimum=1)  # fmt: skip
    learning_rate: float = setting(0.005, "Adam's initial learning rate.", minimum=0)
    batch_size: int = setting(16, "Toxic texts per step (the non-toxic side is used whole).",
                              minimum=4)  # fmt: skip
    l1: float = setting(0.0, "Sparse-group lasso: weight of each unit's |scale - 1| and |shift| "
                             "(a proximal step; 0: none).", minimum=0)  # fmt: skip
    group: float = setting(0.0, "Sparse-group lasso: weight of each site's scales and, apart, "
                                "its shifts, so whole layers drop out (0: none).",
                           minimum=0)  # fmt: skip
    max_length: int = setting(64, "Tokens kept per text.", minimum=2)
    draw_seed: int = setting(0, "Which texts are drawn and in which order they are seen.",
                             minimum=0)  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)
        if self.batch_size > self.samples:
            raise InputError(f"batch size ({self.batch_size}) must not exceed the samples per "
                             f"side ({self.samples})")  # fmt: skip


@dataclass(frozen=True)
class IdentityConfig:
    scale: float = setting(1.0, "Factor on every coordinate of the unembedding input (1: none).")

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.scale > 0:
            raise InputError(f"scale must be > 0, got {self.scale}")
