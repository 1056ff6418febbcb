"""The one base every intervention shares: fit, apply (always restored), bake, save, load.

An artifact is a folder with `intervention.safetensors` (tensors) and `intervention.json`
(method, parameters, the model and a hash of each weight the edit depends on, data hashes, seed,
versions). Loading onto a model whose weights hash differently is refused: an edit fitted on one
model is meaningless on another, and applying it twice (after a bake) is a silent error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import safetensors.torch
import torch
import transformers

from .. import __version__
from ..errors import ArtifactError, NotBakeableError
from ..models import LanguageModel

TENSORS_FILE = "intervention.safetensors"
META_FILE = "intervention.json"
FORMAT_VERSION = 1
REGISTRY: dict[str, type[Intervention]] = {}


def register(cls: type[Intervention]) -> type[Intervention]:
    """Class decorator: make a method reachable by name (CLI, `load_intervention`)."""
    if cls.method in REGISTRY and REGISTRY[cls.method] is not cls:
        raise ValueError(f"intervention method '{cls.method}' registered twice")
    REGISTRY[cls.method] = cls
    return cls


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


class Intervention(ABC):
    """State is a dict of tensors plus JSON metadata, so every method saves and loads alike."""

    method: ClassVar[str]

    def __init__(self, tensors: dict[str, torch.Tensor], meta: ArtifactMeta) -> None:
        if meta.method != self.method:
            raise ArtifactError(f"artifact is for method '{meta.method}', not '{self.method}'")
        self.tensors = tensors
        self.meta = meta

    @property
    def params(self) -> dict[str, Any]:
        return self.meta.params

    def with_params(self, **changes: Any) -> Self:
        """The same fitted tensors under other parameters (a strength, say): no refit."""
        return type(self)(dict(self.tensors), replace(self.meta, params={**self.params, **changes}))

    # -- what each method provides -----------------------------------------------------------
    @classmethod
    @abstractmethod
    def fit(cls, lm: LanguageModel, **kwargs: Any) -> Self:
        """Fit on `lm` and return an intervention bound to its weights."""

    @abstractmethod
    def hooks(self, lm: LanguageModel) -> Iterable[AbstractContextManager[Any]]:
        """The hook contexts that apply the edit to `lm` (see `eigenshift.hooks`)."""

    def _bake(self, lm: LanguageModel) -> None:
        raise NotBakeableError(
            f"'{self.method}' cannot be folded into plain weights; apply it with "
            "`with intervention.applied(model):` instead"
        )

    # -- shared behaviour ----------------------------------------------------------------------
    @classmethod
    def new_meta(
        cls, lm: LanguageModel, params: dict[str, Any], depends_on: Iterable[str], **kwargs: Any
    ) -> ArtifactMeta:
        hashes = {name: lm.weight_hash(name) for name in depends_on}
        return ArtifactMeta(cls.method, params, lm.name, hashes, **kwargs)

    def check_compatible(self, lm: LanguageModel) -> None:
        for module, expected in self.meta.weight_hashes.items():
            try:
                actual = lm.weight_hash(module)
            except Exception as exc:  # the module does not exist in this model
                raise ArtifactError(
                    f"this '{self.method}' intervention was fitted on '{self.meta.model}' and "
                    f"needs module '{module}', which '{lm.name}' lacks"
                ) from exc
            if actual != expected:
                raise ArtifactError(
                    f"this '{self.method}' intervention was fitted on '{self.meta.model}', but the "
                    f"weights of '{module}' in '{lm.name}' differ (hash {actual[:12]} vs "
                    f"{expected[:12]}): fit it again on this model (a model the edit was already "
                    "baked into is refused too)"
                )

    @contextmanager
    def applied(self, lm: LanguageModel) -> Iterator[LanguageModel]:
        """Apply the edit for the duration of the block; the model is restored on any exit."""
        self.check_compatible(lm)
        with ExitStack() as stack:
            for hook in self.hooks(lm):
                stack.enter_context(hook)
            yield lm

    def bake(self, lm: LanguageModel) -> None:
        """Fold the edit into `lm`'s weights (untying a tied unembedding first, where needed)."""
        self.check_compatible(lm)
        self._bake(lm)

    def save(self, directory: str | Path) -> Path:
        """Write atomically: a crash leaves the old folder or the new one, never half of one."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        try:
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.tensors.items()}
            safetensors.torch.save_file(
                tensors, tmp / TENSORS_FILE, metadata={"method": self.method}
            )
            (tmp / META_FILE).write_text(json.dumps(asdict(self.meta), indent=2) + "\n")
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    @classmethod
    def load(cls, directory: str | Path, lm: LanguageModel | None = None) -> Intervention:
        """Read an artifact of any registered method; with `lm`, refuse it if it does not match."""
        meta = read_meta(directory)
        method_cls = REGISTRY.get(meta.method)
        if method_cls is None:
            raise ArtifactError(
                f"{directory}: unknown intervention method '{meta.method}' "
                f"(known: {', '.join(sorted(REGISTRY))})"
            )
        if cls is not Intervention and not issubclass(method_cls, cls):
            raise ArtifactError(
                f"{directory} holds a '{meta.method}' intervention, not '{cls.method}'"
            )
        try:
            tensors = safetensors.torch.load_file(Path(directory) / TENSORS_FILE)
        except (OSError, safetensors.SafetensorError) as exc:
            raise ArtifactError(f"{directory}: cannot read {TENSORS_FILE}: {exc}") from exc
        intervention = method_cls(tensors, meta)
        if lm is not None:
            intervention.check_compatible(lm)
        return intervention


def read_meta(directory: str | Path) -> ArtifactMeta:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise ArtifactError(
            f"{directory} is not an intervention folder (no {META_FILE}); "
            "give a folder written by `eigenshift fit` or Intervention.save"
        )
    try:
        raw = json.loads(path.read_text())
        meta = ArtifactMeta(**raw)
    except (json.JSONDecodeError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a valid intervention description: {exc}") from exc
    if meta.format_version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has format {meta.format_version}; this eigenshift reads up to "
            f"{FORMAT_VERSION}: upgrade eigenshift"
        )
    return meta


def load_intervention(directory: str | Path, lm: LanguageModel | None = None) -> Intervention:
    return Intervention.load(directory, lm)


@contextmanager
def applied_all(
    interventions: Iterable[Intervention], lm: LanguageModel
) -> Iterator[LanguageModel]:
    """Apply several interventions at once, in order; all are removed on exit."""
    with ExitStack() as stack:
        for intervention in interventions:
            stack.enter_context(intervention.applied(lm))
        yield lm
