"""What `export` writes, free of torch (its command is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from ..core.settings import check_settings, setting

EXPORT_FILE = "eigenshift-export.json"  # marks a folder `export --format hf` wrote
GGUFType = Literal["f16", "f32", "bf16", "q8_0", "source"]
GGUF_TYPES: tuple[str, ...] = get_args(GGUFType)


@dataclass(frozen=True)
class ExportConfig:
    format: Literal["hf", "gguf"] = setting(
        "hf", "hf: a transformers folder; gguf: one .gguf file for llama.cpp and Ollama, from the "
        "GGUF the model was loaded from (steering: a llama.cpp control vector).")  # fmt: skip
    gguf_type: GGUFType = setting(
        "f16", "Type of the tensors the edit changes (source: re-quantized to the source "
        "tensor's type); every other tensor is copied as it was.")  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)
