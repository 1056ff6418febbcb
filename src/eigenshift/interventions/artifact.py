"""What an artifact's JSON holds (`ArtifactMeta`) and its one checked reader: the fields and their
types, a sha256 for every module the edit depends on, and a format this version reads. A damaged
or hand-edited description is one `ArtifactError`, never a crash later."""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import transformers

from ..core.errors import ArtifactError, InputError
from ..core.io import read_json
from ..core.version import __version__
from .registry import META_FILE

FORMAT_VERSION = 1


def versions() -> dict[str, str]:
    return {
        "eigenshift": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


@dataclass
class ArtifactMeta:
    method: str
    params: dict[str, Any]
    model: str
    weight_hashes: dict[str, str]  # module name -> LanguageModel.weight_hash
    data_hashes: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)  # counts and other fit diagnostics
    versions: dict[str, str] = field(default_factory=versions)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = FORMAT_VERSION
    # the behaviour fitted against (`data.behaviour.Behaviour.record`); none recorded: toxicity
    behaviour: dict[str, str] = field(default_factory=dict)


# The type of each field of intervention.json; the first four are required.
# Larger than any fitted value (activations, weights, scores): a damaged or hostile artifact.
TENSOR_LIMIT = 1e6
META_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,), "params": (dict,), "model": (str,), "weight_hashes": (dict,),
    "data_hashes": (dict,), "seed": (int, type(None)), "stats": (dict,), "behaviour": (dict,),
    "versions": (dict,),
    "created": (str,), "format_version": (int,),
}  # fmt: skip
_HASH = re.compile(r"^[0-9a-f]{64}$")


def read_meta(directory: str | Path) -> ArtifactMeta:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{directory} is not an intervention folder (no {META_FILE}); "
            "give a folder written by `eigenshift fit` or Intervention.save"
        )
    try:
        raw = read_json(path, "intervention")
    except InputError as exc:
        raise ArtifactError(str(exc)) from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{path} is not an intervention description (not a JSON object)")
    problems = [f"unknown field '{k}'" for k in raw if k not in META_TYPES]
    problems += [f"no '{k}'" for k in list(META_TYPES)[:4] if k not in raw]
    problems += [f"'{k}' is {type(v).__name__}" for k, v in raw.items() if k in META_TYPES
                 and (not isinstance(v, META_TYPES[k]) or isinstance(v, bool))]  # fmt: skip
    hashes = raw.get("weight_hashes")
    if isinstance(hashes, dict) and not (hashes and all(
            isinstance(v, str) and _HASH.match(v) for v in hashes.values())):  # fmt: skip
        problems.append("'weight_hashes' must name every module the edit depends on, each with "
                        "its sha256")  # fmt: skip
    if problems:
        raise ArtifactError(f"{path} is not a valid intervention description "
                            f"({'; '.join(problems)}): fit it again")  # fmt: skip
    meta = ArtifactMeta(**raw)
    if meta.format_version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format {meta.format_version}; this eigenshift reads up to "
            f"{FORMAT_VERSION}: upgrade eigenshift"
        )
    return meta


_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")


def safe_name(text: str) -> str:
    """`text` as a method name: it becomes a file name in run folders, so no path, no
    separators, no leading dot ("" when nothing is left)."""
    return _UNSAFE.sub("-", text).strip(".-")[:64].rstrip(".-")


def unique_name(wanted: str, taken: Container[str]) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`, ...: the first that is not taken."""
    name, number = wanted, 1
    while name in taken:
        number += 1
        name = f"{wanted}-{number}"
    return name
