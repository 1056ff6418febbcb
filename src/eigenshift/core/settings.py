"""Config dataclasses carry their own help, bounds and choices, so the library and the generated
command line share one source of names and defaults (`eigenshift.cli.options` reads them)."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from .errors import InputError

T = TypeVar("T")


def setting(
    default: Any,
    help: str = "",
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    flag: str | None = None,
    short: str | None = None,
    cli: bool = True,
    resume: bool = True,
) -> Any:
    """A config field with the help text the CLI shows and the bounds `check_settings` enforces;
    `flag` renames the option (a bool's on/off pair, say `--greedy/--sample`), `short` adds a
    one-letter alias; `cli=False` keeps a field off the command line; `resume=False` marks a
    setting the results do not depend on (a batch size), which a resumed run may change."""
    metadata = {"help": help, "minimum": minimum, "maximum": maximum, "flag": flag,
                "short": short, "cli": cli, "resume": resume}  # fmt: skip
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple or a nested config for a structured default")
    if dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def field_types(cls: type) -> dict[str, Any]:
    """The resolved annotation of every field (configs use `from __future__ import annotations`)."""
    return typing.get_type_hints(cls)


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(inner type, whether None is allowed) for `X | None`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def choices_of(annotation: Any) -> tuple[Any, ...] | None:
    """The allowed values of a `Literal[...]` field (optional or not), else None."""
    inner, _ = unwrap_optional(annotation)
    return typing.get_args(inner) if typing.get_origin(inner) is Literal else None


def check_choices(config: Any) -> None:
    """Every Literal field holds one of its values, and every item of a `tuple[Literal, ...]`
    field: one check for every config."""
    for name, annotation in field_types(type(config)).items():
        value = getattr(config, name)
        inner, _ = unwrap_optional(annotation)
        if typing.get_origin(inner) is tuple:  # tuple[X, ...]: check each item as an X
            allowed, values = choices_of(typing.get_args(inner)[0]), tuple(value or ())
        else:
            allowed, values = choices_of(annotation), (() if value is None else (value,))
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad:
            raise InputError(
                f"{name} must be one of {', '.join(map(str, allowed or ()))}, not "
                f"{', '.join(repr(b) for b in bad)}"
            )


def check_settings(config: Any) -> None:
    """The one check every config runs when it is made, before any work: Literal fields hold one
    of their values, and every number (each item of a tuple of numbers too) is finite and within
    the field's bounds. A config's own `__post_init__` adds only what relates two fields."""
    check_choices(config)
    types_ = field_types(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        _check_type(f.name, value, types_[f.name])
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, bool) or not isinstance(item, int | float):
                continue
            if not math.isfinite(item):
                raise InputError(f"{f.name} must be a finite number, got {item}")
            low, high = f.metadata.get("minimum"), f.metadata.get("maximum")
            if low is not None and item < low:
                raise InputError(f"{f.name} must be >= {low:g}, got {item:g}")
            if high is not None and item > high:
                raise InputError(f"{f.name} must be <= {high:g}, got {item:g}")


_KINDS: dict[Any, tuple[type, ...]] = {float: (int, float), int: (int,), str: (str,),
                                       bool: (bool,)}  # fmt: skip


def _check_type(name: str, value: Any, annotation: Any) -> None:
    """A number, string or flag of the field's type (a library caller can pass anything)."""
    inner, optional = unwrap_optional(annotation)
    if value is None and optional:
        return
    kinds = _KINDS.get(inner)
    if kinds is not None and (not isinstance(value, kinds) or
                              (isinstance(value, bool) and inner is not bool)):  # fmt: skip
        raise InputError(f"{name} must be {'a number' if inner is float else inner.__name__}, "
                         f"not {value!r}")  # fmt: skip


def resume_settings(config: Any) -> dict[str, Any]:
    """The settings results depend on, nested configs' flattened after the config's own: what a
    resumed run must share with the run it continues (fields marked `resume=False` left out)."""
    fields = [f for f in dataclasses.fields(config) if f.metadata.get("resume", True)]
    values = {f.name: getattr(config, f.name) for f in fields}
    own = {k: v for k, v in values.items() if not dataclasses.is_dataclass(v)}
    for value in values.values():
        if dataclasses.is_dataclass(value):
            own |= resume_settings(value)
    return own


def with_settings(config: T, changes: Mapping[str, Any], owner: str) -> T:
    """`config` with `changes`; a name the config does not have is an error, never ignored."""
    if not changes:
        return config
    known = [f.name for f in dataclasses.fields(config)]  # type: ignore[arg-type]
    unknown = sorted(set(changes) - set(known))
    if unknown:
        raise InputError(
            f"{owner} has no setting {', '.join(repr(u) for u in unknown)}; "
            f"its settings are: {', '.join(known)}"
        )
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]
