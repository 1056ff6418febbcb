"""The settings of the locate studies, in a module of their own so the command line can read
them without loading scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..core.errors import InputError
from ..core.settings import check_settings, setting

# What locate writes: a folder holding either record is locate's to write into again.
NEURON_TENSORS, NEURON_RECORD, LAYER_RECORD = "neurons.safetensors", "neurons.json", "layers.json"

THRESHOLDS = (0.5, 0.51, 0.52, 0.55)


@dataclass(frozen=True)
class NeuronConfig:
    sites: str | None = setting(None, "Module-name pattern (fnmatch); default: the MLP units.")
    side: Literal["input", "output"] = setting("input", "Score the sites' inputs or outputs.")
    pooling: Literal["max", "mean"] = setting("max", "How a text's token values are pooled.")
    max_examples: int | None = setting(2000, cli=False)  # recorded: set from the data's option
    bootstrap: int = setting(20, "Bootstrap resamples for the stability of the expert sets.",
                             minimum=0)  # fmt: skip
    seed: int = setting(0, cli=False)  # the data's seed
    batch_size: int = setting(16, "Texts per forward pass.", minimum=1)
    max_length: int = setting(128, "Tokens kept per text.", minimum=1)
    thresholds: tuple[float, ...] = setting(THRESHOLDS, minimum=0, maximum=1, cli=False)
    length_bins: int = setting(0, "Also score against texts of similar length (N token-count "
                                  "bins; 0: off).", minimum=0)  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class LayerConfig:
    representation: Literal["residual", "mlp"] = setting(
        "residual", "residual: each block's output; mlp: each block's MLP hidden units.")
    pooling: Literal["mean", "last", "max"] = setting("mean", "How a text's states are pooled.")
    folds: int = setting(5, "Cross-validation folds of the probe and the single-unit scores.",
                         minimum=2)  # fmt: skip
    standardize: bool = setting(False, "z-score each unit before k-means (default: raw vectors, "
                                       "as the paper).", flag="--standardize")  # fmt: skip
    probe_c: float = setting(1.0, "Inverse L2 strength of the logistic-regression probe (> 0).",
                             minimum=0)  # fmt: skip
    max_examples: int | None = setting(2000, cli=False)  # recorded: set from the data's option
    seed: int = setting(0, cli=False)  # the data's seed
    batch_size: int = setting(16, "Texts per forward pass.", minimum=1)
    max_length: int = setting(128, "Tokens kept per text.", minimum=1)
    length_bins: int = setting(0, "Also score probe and k-means within N token-count bins "
                                  "(0: off).", minimum=0)  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)
        if self.probe_c <= 0:
            raise InputError(f"probe C must be positive, got {self.probe_c}")
