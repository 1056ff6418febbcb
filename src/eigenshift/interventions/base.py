"""The one base every intervention shares: fit, apply (always restored), bake, save, load.

An artifact is a folder with `intervention.safetensors` (tensors) and `intervention.json`
(method, parameters, the model and a hash of each weight the edit depends on, data hashes, seed,
versions). Loading onto a model whose weights hash differently is refused: an edit fitted on one
model is meaningless on another, and applying it twice (after a bake) is a silent error.

`Intervention.load` is the one checked reader of every method's artifacts: the JSON's fields and
their types, a hash for every module the edit touches, the tensors the method declares (names,
floating dtypes, finite values, shapes against the model) and knob values in their range. A
damaged or hand-edited artifact is one `ArtifactError`, never a crash inside generation.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import safetensors.torch
import torch

from ..core.errors import ArtifactError, InputError, NotBakeableError
from ..core.io import atomic_folder, refuse_special, write_json_atomic
from ..core.settings import with_settings
from ..models import LanguageModel
from .artifact import TENSOR_LIMIT, ArtifactMeta, read_meta, safe_name, unique_name
from .edits import Edit, bias_room, fold_all, grow_biases, installed
from .registry import META_FILE, METHODS, TENSORS_FILE, MethodSpec

if TYPE_CHECKING:
    from ..capture.states import FitStates
    from ..data import LabelledTexts
    from ..locate.neurons import NeuronScores

_CLASSES: dict[str, type[Intervention]] = {}  # the classes imported so far, by method


def register(cls: type[Intervention]) -> type[Intervention]:
    """Class decorator: make a method reachable by name (`fit METHOD`, `load_intervention`). A
    built-in method's class must match its row in `registry.METHODS`; any other is added."""
    where = f"{cls.__module__.removeprefix(__package__ + '.')}:{cls.__qualname__}"
    summary = (cls.__doc__ or cls.method).strip().splitlines()[0].split(": ", 1)[-1]
    spec = METHODS.setdefault(cls.method, MethodSpec(cls.method, cls.config_class, summary,
                                                     cls.needs, where))  # fmt: skip
    if spec.implementation != where or _CLASSES.get(cls.method, cls) is not cls:
        raise ValueError(f"intervention method '{cls.method}' registered twice")
    if (spec.config, spec.needs, spec.summary) != (cls.config_class, cls.needs, summary):
        raise ValueError(f"'{cls.method}': its class and its row in registry.METHODS differ")
    _CLASSES[cls.method] = cls
    return cls


def method_class(method: str) -> type[Intervention]:
    """The class of a registered method, its module imported on first use."""
    if method not in _CLASSES and method in METHODS:
        module, _, _ = METHODS[method].implementation.partition(":")
        importlib.import_module(f"{__package__}.{module}")
    if method not in _CLASSES:
        raise ArtifactError(f"unknown intervention method '{method}' (known: "
                            f"{', '.join(sorted(METHODS))})")  # fmt: skip
    return _CLASSES[method]


Shapes = dict[str, tuple[int | None, ...]]  # tensor name -> shape (None: any length)


@dataclass(frozen=True)
class FitInputs:
    """What a method fits on besides its config; `needs` says which it requires."""

    data: LabelledTexts | None = None  # labelled texts (toxic and non-toxic)
    neurons: NeuronScores | None = None  # `locate neurons` scores
    states: FitStates | None = None  # lm_head-input states gathered by `evidence.gathering`
    members: tuple[Intervention, ...] | None = None  # fitted interventions a stack combines


NEEDS = {
    "data": "labelled texts (toxic and non-toxic): pass data=load_labelled(...) (CLI: --data)",
    "neurons": "neuron scores: run `eigenshift locate neurons` and pass its scores (CLI: "
    "--neurons FOLDER, or labelled data to score first)",
    "states": "toxic and clean states: pass states=eigenshift.evidence.gather(lm, EvidenceConfig"
    "(...)) (CLI: --evidence, --data, --fit-prompts)",
    "members": "two or more fitted interventions, applied in order: pass members=[...] (CLI: "
    "--member FOLDER, repeated)",
}


class Intervention(ABC):
    """A method is one subclass: a validated config, the inputs it needs, the knobs that change
    without refitting, a fit, and the edits it makes. State is a dict of tensors plus JSON
    metadata, so every method saves, loads, applies and bakes alike."""

    method: ClassVar[str]
    config_class: ClassVar[type[Any]]
    needs: ClassVar[tuple[str, ...]] = ()  # keys of NEEDS; prompts come from a config field
    knobs: ClassVar[tuple[str, ...]] = ()  # params an artifact may change without a refit
    # params fixed at fit time that the config validates too: a damaged one ("dampen":
    # "../etc") must be refused, not silently read as another choice
    choices: ClassVar[tuple[str, ...]] = ()
    index_tensors: ClassVar[tuple[str, ...]] = ()  # integer tensors; every other is floating
    unbounded: ClassVar[tuple[str, ...]] = ()  # ratios a fit may make huge: no TENSOR_LIMIT

    def __init__(self, tensors: dict[str, torch.Tensor], meta: ArtifactMeta) -> None:
        if meta.method != self.method:
            raise ArtifactError(f"artifact is for method '{meta.method}', not '{self.method}'")
        self.tensors = tensors
        self.meta = meta

    @property
    def params(self) -> dict[str, Any]:
        return self.meta.params

    @abstractmethod
    def shapes(self, lm: LanguageModel | None) -> Shapes:
        """The tensors this artifact must hold and their shapes (with `lm`, against that model;
        it may also check the parameters the edits read, raising ArtifactError)."""

    def param(self, name: str, kind: type | tuple[type, ...]) -> Any:
        """A parameter the edits read, checked: a hand-edited artifact fails here, not later."""
        value = self.params.get(name)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ArtifactError(f"this '{self.method}' artifact's parameter '{name}' is "
                                f"{value!r}; fit it again")  # fmt: skip
        return value

    def check(self, lm: LanguageModel | None = None) -> None:
        """The tensors and parameters are what the method writes (against `lm`, when given)."""
        try:
            shapes = self.shapes(lm)
            named = {k: self.params[k] for k in (*self.knobs, *self.choices) if k in self.params}
            with_settings(self.config_class(), named, f"'{self.method}'")
        except ArtifactError:
            raise
        except (InputError, KeyError, TypeError, ValueError, IndexError) as exc:
            raise ArtifactError(f"this '{self.method}' artifact's parameters are damaged ({exc}); "
                                "fit it again") from None  # fmt: skip
        if set(shapes) != set(self.tensors):
            raise ArtifactError(
                f"a '{self.method}' artifact holds the tensors {', '.join(sorted(shapes))}, not "
                f"{', '.join(sorted(self.tensors)) or 'none'}: fit it again"
            )
        for name, shape in shapes.items():
            tensor = self.tensors[name]
            fits = len(shape) == tensor.dim() and all(
                want is None or want == got for want, got in zip(shape, tensor.shape, strict=True))
            integer = self.is_index(name)
            if tensor.is_floating_point() == integer or not fits:
                wanted = "x".join("n" if s is None else str(s) for s in shape)
                kind = "integer" if integer else "floating point"
                raise ArtifactError(
                    f"'{self.method}' tensor '{name}' must be {kind} of shape {wanted}, not "
                    f"{tensor.dtype} {tuple(tensor.shape)}: fit it again"
                )
            if not bool(torch.isfinite(tensor).all()):
                raise ArtifactError(f"'{self.method}' tensor '{name}' holds NaN or infinite "
                                    "values: fit it again")  # fmt: skip
            if name not in self.unbounded and tensor.numel() and float(
                    tensor.abs().max()) > TENSOR_LIMIT:  # fmt: skip
                raise ArtifactError(f"'{self.method}' tensor '{name}' holds values beyond "
                                    f"{TENSOR_LIMIT:g}, which no fit writes: fit it again")

    def is_index(self, name: str) -> bool:
        """Whether tensor `name` holds integers (indices) rather than floating values."""
        return name in self.index_tensors

    def with_params(self, **changes: Any) -> Self:
        """The same fitted tensors under other knob values (a strength, say): no refit."""
        unknown = sorted(set(changes) - set(self.knobs))
        if unknown:
            can = ", ".join(self.knobs) or "nothing"
            raise InputError(f"'{self.method}' can change {can} without refitting, not "
                             f"{', '.join(unknown)}")  # fmt: skip
        with_settings(self.config_class(), changes, f"'{self.method}'")  # the same checks as a fit
        return type(self)(dict(self.tensors), replace(self.meta, params={**self.params, **changes}))

    # -- fitting -------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        lm: LanguageModel,
        config: Any = None,
        *,
        data: LabelledTexts | None = None,
        neurons: NeuronScores | None = None,
        states: FitStates | None = None,
        members: Iterable[Intervention] | None = None,
        progress: bool = True,
        **settings: Any,
    ) -> Self:
        """Fit on `lm`; `settings` change single fields of the config (unknown names are an
        error), `data`, `neurons`, `states` and `members` are the inputs the method `needs`."""
        if config is not None and not isinstance(config, cls.config_class):
            raise InputError(f"'{cls.method}' takes a {cls.config_class.__name__}, not a "
                             f"{type(config).__name__}")  # fmt: skip
        config = with_settings(config or cls.config_class(), settings, f"'{cls.method}'")
        inputs = FitInputs(data=data, neurons=neurons, states=states,
                           members=None if members is None else tuple(members))
        for need in NEEDS:
            given = getattr(inputs, need) is not None
            if need in cls.needs and not given:
                raise InputError(f"'{cls.method}' needs {NEEDS[need]}")
            if given and need not in cls.needs:
                raise InputError(f"'{cls.method}' takes no {need}; it needs "
                                 f"{', '.join(cls.needs) or 'no inputs'}")  # fmt: skip
        return cls.fit_inputs(lm, config, inputs, progress)

    @classmethod
    @abstractmethod
    def fit_inputs(cls, lm: LanguageModel, config: Any, inputs: FitInputs, progress: bool) -> Self:
        """The method's own fit, on a validated config and the inputs it needs."""

    # -- what the edit is ----------------------------------------------------------------------
    @abstractmethod
    def edits(self, lm: LanguageModel) -> list[Edit]:
        """The edits this intervention makes to `lm` (none: it is the identity)."""

    @property
    def prefix(self) -> str:
        """Text placed before every prompt the model reads (the prompting baseline, or a stack
        holding it); none for a weight edit. Generation, perplexity and capability read it; no
        weight can hold it, so an export refuses it."""
        return ""

    def digest(self) -> str:
        """What the edit is (method, parameters, the weights and data it was fitted on, its
        tensors), not when it was made: a deterministic refit resumes the run its first fit
        started, and reuses the export cached for it."""
        meta = self.meta
        digest = hashlib.sha256(json.dumps(
            [meta.method, meta.params, meta.weight_hashes, meta.data_hashes, meta.seed],
            sort_keys=True, default=str).encode())  # fmt: skip
        for name in sorted(self.tensors):
            digest.update(name.encode())
            tensor = self.tensors[name].detach().cpu().contiguous().reshape(-1)
            digest.update(tensor.view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def describe(self, lm: LanguageModel) -> str:
        """What was fitted, for the command line."""
        shown = {k: v for k, v in self.params.items() if not isinstance(v, dict | list)}
        return f"{self.method}: " + ", ".join(f"{k} {v}" for k, v in shown.items())

    # -- shared behaviour ----------------------------------------------------------------------
    @classmethod
    def new_meta(
        cls, lm: LanguageModel, params: dict[str, Any], depends_on: Iterable[str], **kwargs: Any
    ) -> ArtifactMeta:
        hashes = {name: lm.weight_hash(name) for name in depends_on}
        return ArtifactMeta(cls.method, params, lm.name, hashes, **kwargs)

    def check_compatible(self, lm: LanguageModel) -> None:
        """Refuse to touch `lm` unless it is the model the edit was fitted on, and the edit's
        tensors fit it."""
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
        self.check(lm)

    def checked_edits(self, lm: LanguageModel) -> list[Edit]:
        """The edits, each at a module whose weights the artifact's hashes vouch for."""
        self.check_compatible(lm)
        edits = self.edits(lm)
        unhashed = sorted({e.site.module for e in edits} - set(self.meta.weight_hashes))
        if unhashed:
            raise ArtifactError(
                f"this '{self.method}' artifact edits {', '.join(unhashed)} but records no hash "
                "of its weights, so it cannot be checked against the model: fit it again"
            )
        return edits

    @contextmanager
    def applied(self, lm: LanguageModel) -> Iterator[LanguageModel]:
        """Apply the edit for the duration of the block; the model is restored on any exit."""
        with installed(lm, self.checked_edits(lm)):
            yield lm

    def weights_only(self) -> Intervention | None:
        """The part of the edit weights can hold, without any text placed before prompts (an
        engine that serves baked weights reads the text in its prompts); None when nothing is
        left."""
        return None if self.prefix else self

    def refuse_prefix(self) -> None:
        """Refuse, in one line, to turn an edit that places text before prompts into weights."""
        if self.prefix:
            raise NotBakeableError(
                f"'{self.method}' places text before every prompt, which no weight can hold: "
                "evaluate it with a hook, or deploy the model with that text before your prompts"
            )

    def bake(self, lm: LanguageModel) -> None:
        """Fold the edit into `lm`'s weights (untying a tied unembedding first, where needed)."""
        self.refuse_prefix()
        grow_biases(lm, edits := self.checked_edits(lm))  # where a shift needs one
        fold_all(lm, edits, self.method, lambda: installed(lm, edits))

    @contextmanager
    def baked(self, lm: LanguageModel) -> Iterator[LanguageModel]:
        """The edit folded into the weights for the duration of the block; the weights, the
        head's tie and any added bias are put back on any exit."""
        self.refuse_prefix()
        edits = self.checked_edits(lm)
        touched = [e.target.module for e in edits]
        with lm.weights_kept([*touched, lm.arch.unembedding]), bias_room(lm, edits):
            fold_all(lm, edits, self.method, lambda: installed(lm, edits))  # checked above
            yield lm

    def save(self, directory: str | Path) -> Path:
        """Write atomically: a crash leaves the old folder or the new one, never half of one."""
        with atomic_folder(Path(directory), marker=META_FILE) as tmp:
            tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.tensors.items()}
            safetensors.torch.save_file(
                tensors, tmp / TENSORS_FILE, metadata={"method": self.method}
            )
            write_json_atomic(tmp / META_FILE, asdict(self.meta))
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path, lm: LanguageModel | None = None) -> Intervention:
        """Read an artifact of any registered method; with `lm`, refuse it if it does not match."""
        meta = read_meta(directory)
        try:
            method_cls = method_class(meta.method)
        except ArtifactError as exc:
            raise ArtifactError(f"{directory}: {exc}") from None
        if cls is not Intervention and not issubclass(method_cls, cls):
            raise ArtifactError(
                f"{directory} holds a '{meta.method}' intervention, not '{cls.method}'"
            )
        refuse_special(Path(directory), ArtifactError)
        try:
            tensors = safetensors.torch.load_file(Path(directory) / TENSORS_FILE)
        except (OSError, safetensors.SafetensorError) as exc:
            raise ArtifactError(f"{directory}: cannot read {TENSORS_FILE}: {exc}") from None
        intervention = method_cls(tensors, meta)
        try:
            intervention.check()
            if lm is not None:
                intervention.check_compatible(lm)
        except ArtifactError as exc:
            raise ArtifactError(f"{directory}: {exc}") from None
        return intervention


def load_intervention(directory: str | Path, lm: LanguageModel | None = None) -> Intervention:
    return Intervention.load(directory, lm)


def load_interventions(
    directories: Iterable[str | Path], lm: LanguageModel | None = None,
    reserved: Iterable[str] = ("original",),
) -> dict[str, Intervention]:
    """Artifacts named by their folder's name, made safe (names become file names in run
    folders, so never a path) and unique (numbered where two folders share a name or a name is
    `reserved`)."""
    loaded: dict[str, Intervention] = {}
    taken = set(reserved)
    for directory in map(Path, directories):
        intervention = load_intervention(directory, lm)
        name = unique_name(safe_name(directory.resolve().name) or intervention.method, taken)
        taken.add(name)
        loaded[name] = intervention
    return loaded


def applied_or_not(
    intervention: Intervention | None, lm: LanguageModel
) -> AbstractContextManager[LanguageModel | None]:
    """`intervention.applied(lm)`, or nothing to do for the unmodified model (None)."""
    return intervention.applied(lm) if intervention is not None else nullcontext()


@contextmanager
def applied_all(
    interventions: Iterable[Intervention], lm: LanguageModel
) -> Iterator[LanguageModel]:
    """Apply several interventions at once, in order; all are removed on exit."""
    with ExitStack() as stack:
        for intervention in interventions:
            stack.enter_context(intervention.applied(lm))
        yield lm
