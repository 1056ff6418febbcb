"""Edits leaving as GGUF, for llama.cpp and Ollama.

- A weight edit: the source GGUF is copied field by field and tensor by tensor, byte for byte
  (its quantization kept); only the tensors the edit changes are written anew, in F16 by default
  or re-quantized with the gguf package. A tied unembedding gains its own `output.weight`, so the
  token embeddings stay untouched.
- A constant shift of every logit (centered EigenShift), which no GGUF tensor of these families
  can hold, goes into the metadata as `eigenshift.logit_bias` and into `logit_bias.json` beside
  the file: llama.cpp and its servers take it as `logit_bias` per request.
- A shift of the residual stream after some blocks (mean-difference steering) is what llama.cpp
  calls a control vector: one F32 `direction.N` tensor per block, added to block N's output.

The source must be the GGUF the model was loaded from: eigenshift records it when it converts one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import torch

from ..core.assets import sha256_file
from ..core.errors import InputError, NotBakeableError
from ..core.io import (
    prepare_out,
    read_json,
    refuse_unowned,
    temporary_file,
)
from ..interventions import Intervention
from ..models import LanguageModel, resolve_spec
from ..models.architecture import weight_of
from ..models.gguf import SOURCE_RECORD
from ..models.options import LOGIT_BIAS_FILE
from .config import GGUF_TYPES, ExportConfig
from .hf import without_logit_bias

log = logging.getLogger(__name__)

LOGIT_BIAS_KEY = "eigenshift.logit_bias"
DIGEST_KEY = "eigenshift.digest"  # in every GGUF eigenshift writes
BIAS_FILE_KEY = "eigenshift.logit_bias_file_sha256"  # the side file it wrote with it
# llama.cpp's converter permutes these for the llama family: an edit of them would need it too.
PERMUTED = ("attn_q", "attn_k")


def _not_gguf(name: str) -> InputError:
    return InputError(
        f"'{name}' was not loaded from a GGUF file, so there are no quantized tensors to copy: "
        "load it with --model FILE.gguf (e.g. one llama.cpp's convert_hf_to_gguf.py made from "
        "this folder), or export --format hf"
    )


def check_gguf_source(spec: str) -> None:
    """Refuse, before a model loads, a --model that cannot give a GGUF export its source."""
    resolved = resolve_spec(spec)
    if resolved.kind == "hub" or (
        resolved.kind == "folder" and not (Path(resolved.location) / SOURCE_RECORD).is_file()
    ):
        raise _not_gguf(spec)


def _recorded_source(lm: LanguageModel) -> tuple[Path, str]:
    """The GGUF file `lm` was converted from and its sha256, as recorded at conversion."""
    record_file = Path(lm.location or "") / SOURCE_RECORD
    if not record_file.is_file():
        raise _not_gguf(lm.name)
    record = read_json(record_file, "the conversion record")
    if not (isinstance(record, dict) and isinstance(record.get("gguf_file"), str)
            and isinstance(record.get("sha256"), str)):
        raise InputError(f"{record_file}: not a conversion record eigenshift wrote (it needs "
                         "'gguf_file' and 'sha256'): load the model from the GGUF file again")
    return Path(record["gguf_file"]), record["sha256"]


def source_gguf(lm: LanguageModel) -> Path:
    """The GGUF file `lm` was converted from, checked unchanged since (its sha256 read once)."""
    path, digest = _recorded_source(lm)
    if not path.is_file() or sha256_file(path) != digest:
        raise InputError(f"{path}, the GGUF '{lm.name}' was converted from, is gone or changed "
                         "since: load the model from the GGUF file again")  # fmt: skip
    return path


@dataclass(frozen=True)
class _Field:
    name: str
    value: Any
    vtype: gguf.GGUFValueType
    sub_type: gguf.GGUFValueType | None


def _fields(reader: gguf.GGUFReader) -> Iterator[_Field]:
    """Every metadata field but the ones the writer makes itself."""
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith(
                ("GGUF.", "eigenshift.")):  # a source that is an export: its edit is not ours
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        yield _Field(field.name, field.contents(), vtype, sub)


def _arch(reader: gguf.GGUFReader) -> tuple[str, gguf.MODEL_ARCH]:
    field = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    name = str(field.contents()) if field else ""
    by_name = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if name not in by_name:
        raise InputError(f"the source GGUF's architecture '{name}' is unknown to the gguf "
                         "package: export --format hf instead")  # fmt: skip
    return name, by_name[name]


def _encode(values: torch.Tensor, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    """A float tensor as GGUF data of `qtype` (raises one line for a type the package cannot
    quantize to)."""
    array = values.detach().float().cpu().numpy()
    try:
        return gguf.quants.quantize(array, qtype)
    except (NotImplementedError, ValueError) as exc:
        raise InputError(f"the gguf package cannot write {qtype.name} ({exc}); use "
                         "--gguf-type f16, bf16, f32 or q8_0") from None  # fmt: skip


def _parameters(lm: LanguageModel, modules: set[str]) -> dict[str, torch.Tensor]:
    """HF parameter name -> tensor, for the weights and biases of `modules`."""
    out = {}
    for name in sorted(modules):
        module = lm.module(name)
        out[f"{name}.weight"] = weight_of(module)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            out[f"{name}.bias"] = bias
    return out


def export_gguf(
    lm: LanguageModel,
    intervention: Intervention,
    out: str | Path,
    *,
    tensor_type: str = ExportConfig.gguf_type,
) -> Path:
    """Write `lm` with `intervention` baked in as one GGUF file `out`, from the GGUF it was
    loaded from; `lm` is put back as it was. A control-vector edit (steering) goes to
    `export_control_vector` instead."""
    if tensor_type not in GGUF_TYPES:
        raise InputError(f"--gguf-type must be one of {', '.join(GGUF_TYPES)}, not "
                         f"'{tensor_type}'")  # fmt: skip
    if control_vector(lm, intervention) is not None:  # it checks --out and the prefix itself
        return export_control_vector(lm, intervention, out)
    out = check_gguf_out(out)
    intervention.refuse_prefix()
    source = source_gguf(lm)
    reader = gguf.GGUFReader(source)
    arch_name, arch = _arch(reader)
    names = gguf.get_tensor_name_map(arch, lm.arch.num_layers)
    present = {t.name: t for t in reader.tensors}
    targets = {e.target.module for e in intervention.checked_edits(lm)}
    with intervention.baked(lm), without_logit_bias(lm) as bias:
        replaced: dict[str, np.ndarray] = {}
        types: dict[str, gguf.GGMLQuantizationType] = {}
        for hf_name, value in _parameters(lm, targets).items():
            name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            tied_head = name == "output.weight" and name not in present
            if name is None or (name not in present and not tied_head):
                raise NotBakeableError(
                    f"the edit changes '{hf_name}', which the source GGUF ({arch_name}) has no "
                    "tensor for: export --format hf")
            if arch == gguf.MODEL_ARCH.LLAMA and name.split(".")[-2] in PERMUTED:
                raise NotBakeableError(f"the edit changes '{hf_name}', which llama.cpp stores "
                                       "permuted: export --format hf")  # fmt: skip
            like = present["token_embd.weight" if tied_head else name]
            qtype = (like.tensor_type if tensor_type == "source"
                     else gguf.GGMLQuantizationType[tensor_type.upper()])  # fmt: skip
            if like.tensor_type in (gguf.GGMLQuantizationType.F32,) and value.dim() == 1:
                qtype = gguf.GGMLQuantizationType.F32  # norms and biases stay F32, as converted
            replaced[name] = _encode(value, qtype)
            types[name] = qtype
        logit_bias = None if bias is None else bias.numpy().astype(np.float32)
    writer = gguf.GGUFWriter(None, arch_name, endianess=reader.endianess)
    for field in _fields(reader):
        writer.add_key_value(field.name, field.value, field.vtype, sub_type=field.sub_type)
    writer.add_string("eigenshift.method", intervention.method)
    writer.add_string(DIGEST_KEY, intervention.digest())
    writer.add_string("eigenshift.source_sha256", _recorded_source(lm)[1])  # checked above
    if logit_bias is not None:
        writer.add_array(LOGIT_BIAS_KEY, logit_bias.tolist())
    tensors: list[tuple[str, np.ndarray, gguf.GGMLQuantizationType]] = []
    for tensor in reader.tensors:
        data = replaced.pop(tensor.name, None)
        if data is None:
            tensors.append((tensor.name, tensor.data, tensor.tensor_type))
        else:
            tensors.append((tensor.name, data, types[tensor.name]))
    tensors += [(name, data, types[name]) for name, data in replaced.items()]  # output.weight
    bias_text = None if logit_bias is None else json.dumps(
        {str(i): float(b) for i, b in enumerate(logit_bias)}) + "\n"  # fmt: skip
    _write_owned(out, writer, tensors, bias_text)
    log.info("wrote %s: %d of %d tensors edited (%s), the rest copied", out, len(types),
             len(tensors), ", ".join(sorted(types)))  # fmt: skip
    return out


def _write(
    writer: gguf.GGUFWriter, path: Path,
    tensors: list[tuple[str, np.ndarray, gguf.GGMLQuantizationType]],
) -> None:  # fmt: skip
    for name, data, qtype in tensors:
        writer.add_tensor_info(name, data.shape, data.dtype, data.nbytes, qtype)
    writer.path = path
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _ in tensors:
        writer.write_tensor_data(data)
    writer.close()


def _write_owned(
    out: Path, writer: gguf.GGUFWriter,
    tensors: list[tuple[str, np.ndarray, gguf.GGMLQuantizationType]], bias_text: str | None,
) -> None:  # fmt: skip
    """The GGUF and its logit-bias side file (or, without a bias, no side file: an earlier
    export's is removed), each written to a temporary file first and renamed into place one
    after the other, so a failed write leaves the earlier pair. The GGUF records the side
    file's hash, which is how a later export knows the side file is ours to replace."""
    if bias_text is not None:
        writer.add_string(BIAS_FILE_KEY, hashlib.sha256(bias_text.encode()).hexdigest())
    check_gguf_out(out)  # again: the model load and bake took a while
    out.parent.mkdir(parents=True, exist_ok=True)
    bias_file = _bias_file(out)
    with temporary_file(out.parent, out.name) as tmp, \
            temporary_file(out.parent, bias_file.name) as tmp_bias:  # fmt: skip
        _write(writer, tmp, tensors)
        if bias_text is not None:
            tmp_bias.write_text(bias_text, encoding="utf-8")
        os.replace(tmp, out)
        if bias_text is not None:
            os.replace(tmp_bias, bias_file)
        else:
            bias_file.unlink(missing_ok=True)  # ours (checked): an earlier export's to this path


def _bias_file(out: Path) -> Path:
    return out.with_name(out.stem + "." + LOGIT_BIAS_FILE)


def _ours(path: Path) -> dict[str, Any] | None:
    """The eigenshift metadata of a GGUF eigenshift wrote, None for any other file."""
    try:
        fields = gguf.GGUFReader(path).fields
        found = {k: f.contents() for k, f in fields.items() if k.startswith("eigenshift.")}
    except Exception:  # the gguf package raises many types for a file it cannot parse
        return None
    return found if DIGEST_KEY in found else None


def _side_file_ours(bias_file: Path, ours: dict[str, Any]) -> bool:
    """Whether the GGUF's metadata vouches for the side file: by the hash it recorded, or (an
    export from before the hash was recorded) by holding the same biases."""
    if ours.get(BIAS_FILE_KEY) == hashlib.sha256(bias_file.read_bytes()).hexdigest():
        return True
    recorded = list(ours.get(LOGIT_BIAS_KEY) or [])
    try:
        written = json.loads(bias_file.read_text(encoding="utf-8"))
        values = [written[str(i)] for i in range(len(recorded))]
    except (ValueError, KeyError, TypeError, RecursionError):
        return False
    return bool(recorded) and len(written) == len(recorded) and np.allclose(
        np.asarray(values, dtype=np.float64), np.asarray(recorded, dtype=np.float64))


def check_gguf_out(out: str | Path) -> Path:
    """Refuse, before any work, an --out that eigenshift may not write: not a .gguf path, a
    folder, a symlink or special file, a GGUF it did not write, or a logit-bias file beside it
    that is not the one that GGUF recorded (a user's own file by that name is never replaced
    or removed)."""
    out = Path(out)
    if out.suffix.lower() != ".gguf":
        raise InputError(f"--out {out}: a GGUF export is one file; give a path ending in .gguf")
    if out.is_dir() and not out.is_symlink():
        raise InputError(f"--out {out} is a folder; give a .gguf file path")
    prepare_out(out.parent, create=False)  # a refusal after this check leaves no folder
    bias_file = _bias_file(out)
    refuse_unowned(out)
    refuse_unowned(bias_file)
    ours = _ours(out) if out.exists() else {}
    if ours is None:
        raise InputError(f"{out} exists and is not a GGUF eigenshift wrote; refusing to replace "
                         "it: give a new .gguf path")  # fmt: skip
    if bias_file.exists() and not _side_file_ours(bias_file, ours):
        raise InputError(f"{bias_file} exists and is not the logit-bias file eigenshift wrote "
                         f"with {out.name}; refusing to replace or remove it: move it, or give "
                         "another .gguf path")  # fmt: skip
    return out


# -- control vectors ----------------------------------------------------------------------------
def control_vector(lm: LanguageModel, intervention: Intervention) -> dict[int, torch.Tensor] | None:
    """Block index -> the vector the edit adds to that block's output, when every edit is such
    a shift (mean-difference steering); None for any other edit."""
    edits = intervention.checked_edits(lm)
    blocks = {f"{lm.arch.blocks}.{i}": i for i in range(lm.arch.num_layers)}
    out: dict[int, torch.Tensor] = {}
    for edit in edits:
        affine = edit.affine
        if (edit.site.side != "output" or edit.site.module not in blocks or affine is None
                or affine.shift is None or affine.scale is not None or affine.left is not None):
            return None
        layer = blocks[edit.site.module]
        out[layer] = out.get(layer, 0) + affine.shift.detach().float().cpu()
    return out or None


def export_control_vector(lm: LanguageModel, intervention: Intervention, out: str | Path) -> Path:
    """The edit as a llama.cpp control vector (`--control-vector FILE` in llama-cli and
    llama-server): `direction.N` is added to the output of block N (llama.cpp cannot steer
    block 0)."""
    out = check_gguf_out(out)
    intervention.refuse_prefix()
    vectors = control_vector(lm, intervention)
    if vectors is None:
        raise NotBakeableError(f"'{intervention.method}' is not a shift of block outputs, so it "
                               "is no control vector: export it as a model")  # fmt: skip
    if 0 in vectors:
        raise NotBakeableError("llama.cpp control vectors cannot act on the first block's "
                               "output: fit the steering at a later --layer")  # fmt: skip
    hint = lm.model.config.model_type
    with suppress(InputError):  # the source's own name for the family, where there is one
        path, _ = _recorded_source(lm)
        if path.is_file():
            hint = _arch(gguf.GGUFReader(path))[0]
    writer = gguf.GGUFWriter(None, "controlvector")
    writer.add_string("controlvector.model_hint", hint)
    writer.add_uint32("controlvector.layer_count", len(vectors))
    writer.add_string("eigenshift.method", intervention.method)
    writer.add_string(DIGEST_KEY, intervention.digest())
    tensors = [(f"direction.{layer}", vectors[layer].numpy().astype(np.float32),
                gguf.GGMLQuantizationType.F32) for layer in sorted(vectors)]  # fmt: skip
    _write_owned(out, writer, tensors, None)
    log.info("wrote control vector %s (blocks %s)", out, sorted(vectors))
    return out

