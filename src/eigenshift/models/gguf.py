"""GGUF files become plain safetensors folders once, cached by the file's hash.

transformers de-quantizes GGUF on every load (slow) and cannot `save_pretrained` such a model, so we
rebuild it from its config, copy the state dict in, and save that; later loads take seconds.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..core.assets import cache_dir, sha256_file
from ..core.errors import InputError, ModelLoadError
from ..core.io import atomic_folder, read_json, write_json_atomic

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
SOURCE_RECORD = "eigenshift-source.json"  # the GGUF a converted folder came from (export reads it)


def check_gguf(path: Path) -> None:
    if not path.is_file():
        raise ModelLoadError(f"GGUF file not found: {path}")
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); "
            "check the path or re-download it"
        )


def converted_folder(path: Path) -> Path:
    """The cached plain folder for a GGUF file, converting it on first use."""
    check_gguf(path)
    path = path.absolute()  # named from any working directory (a hub cache's link kept)
    digest = sha256_file(path)
    out = cache_dir() / "gguf" / f"{path.stem}-{digest[:16]}"
    record = {"gguf_file": str(path), "sha256": digest, "dequantized": True}
    if (out / SOURCE_RECORD).is_file():
        # the same bytes found at another path: record where they are (a read-only shared
        # cache keeps the old record, and an export then names the file it can find)
        with suppress(InputError, OSError):
            if read_json(out / SOURCE_RECORD) != record:
                write_json_atomic(out / SOURCE_RECORD, record)
        return out
    log.info("converting %s to a plain safetensors folder (once) at %s", path.name, out)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        quantized = AutoModelForCausalLM.from_pretrained(
            path.parent, gguf_file=path.name, dtype=torch.float32
        )
    except Exception as exc:  # gguf/transformers raise many types for a damaged file
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise ModelLoadError(
            f"{path} could not be read as a GGUF model ({type(exc).__name__}: {first}); "
            "the file may be truncated or of an architecture transformers cannot de-quantize"
        ) from exc
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    with atomic_folder(out) as tmp:  # replaces a folder an interrupted run left without a record
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / SOURCE_RECORD, record)
    return out
