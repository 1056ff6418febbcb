"""Click options generated from the library's config dataclasses: one source of names, defaults,
choices, bounds and help. `config_options(Cls)` decorates a command with an option per field
(nested configs flattened), and hands the command one `Cls` built from their values."""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from ..core.settings import choices_of, field_types, unwrap_optional

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Field:
    path: str  # dotted, from the root config
    dest: str  # the click parameter name
    field: dataclasses.Field[Any]
    annotation: Any
    default: Any


def _fields(
    cls: type, defaults: Any, prefix: str, only: tuple[str, ...] | None, exclude: tuple[str, ...],
    path: str = "",
) -> list[Field]:
    out = []
    types = field_types(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or f.name in exclude:
            continue
        if only is not None and not path and f.name not in only:
            continue
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(types[f.name]):
            out += _fields(types[f.name], value, prefix, None, (), f"{path}{f.name}.")
        else:
            out.append(Field(f"{path}{f.name}", prefix + f.name, f, types[f.name], value))
    return out


def _option(item: Field) -> Callable[[F], F]:
    meta = item.field.metadata
    dashed = "--" + item.dest.replace("_", "-")
    inner, _ = unwrap_optional(item.annotation)
    kwargs: dict[str, Any] = {"help": meta.get("help") or None, "default": item.default}
    flag = meta.get("flag")
    if flag and item.dest != item.field.name:  # a prefixed copy: prefix the flag names too
        prefix = "--" + item.dest[: -len(item.field.name)].replace("_", "-")
        flag = "/".join(prefix + part.removeprefix("--") for part in flag.split("/"))
    if inner is bool:
        names = [flag or f"{dashed}/--no-{dashed[2:]}"]
        if flag and "/" not in flag:
            kwargs["is_flag"] = True
    else:
        names = [flag or dashed]
        multiple = typing.get_origin(inner) is tuple
        base = typing.get_args(inner)[0] if multiple else inner
        choices = choices_of(base)
        low, high = meta.get("minimum"), meta.get("maximum")
        bounded = low is not None or high is not None
        if choices is not None:
            kwargs["type"] = click.Choice([str(c) for c in choices])
        elif base is int:
            kwargs["type"] = click.IntRange(low, high) if bounded else int
        elif base is float:
            kwargs["type"] = click.FloatRange(low, high) if bounded else float
        elif base is Path:
            kwargs["type"] = click.Path(file_okay=False, path_type=Path)
        if multiple:
            kwargs["multiple"] = True
            kwargs["default"] = tuple(item.default)
    if meta.get("short"):
        names.append(meta["short"])
    kwargs["show_default"] = item.default is not None and item.default != ()
    return click.option(*names, item.dest, **kwargs)


def config_options(
    cls: type,
    *,
    into: str,
    prefix: str = "",
    only: tuple[str, ...] | None = None,
    exclude: tuple[str, ...] = (),
    defaults: Any = None,
    behaviour: bool = True,
) -> Callable[[F], F]:
    """Decorate a command with an option per field of `cls` (defaults from `defaults`, else
    `cls()`); the command receives them as one `cls` instance, the argument named `into`.
    `prefix` names a second copy (the sweep's `--fit-...` sampling, say). `behaviour=False`:
    `--behaviour` leaves these settings alone (they describe another input)."""
    base = defaults if defaults is not None else cls()
    items = _fields(cls, base, prefix, only, exclude)

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            chosen = _with_behaviour(items, kwargs) if behaviour else None
            config = _build(cls, base, items, kwargs)
            if chosen is not None and any(f.name == "behaviour" for f in
                                             dataclasses.fields(cls)):  # fmt: skip
                config = dataclasses.replace(config, behaviour=chosen.name,
                                             sides=chosen.scored_sides)
            kwargs[into] = config
            return fn(*args, **kwargs)

        command = wrapper
        for item in reversed(items):
            command = _option(item)(command)
        return command  # type: ignore[return-value]

    return decorate


BEHAVIOUR = "eigenshift.behaviour"  # where --behaviour leaves the behaviour, in click's context


def behaviour_option(fn: F) -> F:
    """`--behaviour NAME|FILE`: the labelled data, prompts, scorer, judge and clean text of a
    behaviour (`data.behaviour`) for every such setting the command line leaves at its
    default."""

    def remember(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
        if value is not None:
            from ..core.errors import EigenshiftError
            from ..data.behaviour import load_behaviour

            try:
                ctx.meta[BEHAVIOUR] = load_behaviour(value)
            except EigenshiftError as exc:
                raise click.BadParameter(str(exc), ctx, param) from None

    return click.option(
        "--behaviour", is_eager=True, expose_value=False, callback=remember,
        help="The behaviour to work on: toxicity (default) or a .json/.yaml file naming its "
        "labelled data, prompts, scorer, judge, clean text and its two sides; settings given "
        "by hand still win.")(fn)  # fmt: skip


def given_behaviour() -> Any:
    """The behaviour --behaviour named on this command line (None without one)."""
    ctx = click.get_current_context(silent=True)
    return None if ctx is None else ctx.meta.get(BEHAVIOUR)


def refuse_preference(command: str) -> None:
    """A study whose rule reads continuations refuses a behaviour measured on sentence pairs:
    its choice would follow the continuations' scorer, not the behaviour."""
    behaviour = given_behaviour()
    if behaviour is not None and behaviour.tasks:
        from ..core.errors import InputError

        raise InputError(
            f"{command} chooses its points by continuations, and '{behaviour.name}' is measured "
            f"as a preference on sentence pairs ({', '.join(behaviour.tasks)}), which its rule "
            f"does not read: compare its fits with `evaluate --behaviour {behaviour.name}` (or "
            f"run `demo --behaviour {behaviour.name}`)")


def _with_behaviour(items: list[Field], kwargs: dict[str, Any]) -> Any:
    """The behaviour --behaviour named (None without one); its settings put in `kwargs` for
    the options of `items` the command line left at their defaults."""
    behaviour = given_behaviour()
    if behaviour is None:
        return None
    ctx = click.get_current_context()
    given = behaviour.settings()
    defaults = (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    for item in items:
        name = item.field.name
        if name in given and item.path == name and ctx.get_parameter_source(item.dest) in defaults:
            kwargs[item.dest] = given[name]
    return behaviour


def _build(cls: type, base: Any, items: list[Field], kwargs: dict[str, Any]) -> Any:
    """The config the command line asked for: its options popped from `kwargs`, fields left off
    the command line at their defaults."""
    values: dict[str, dict[str, Any]] = {}
    for item in items:
        head, _, name = item.path.rpartition(".")
        values.setdefault(head, {})[name] = kwargs.pop(item.dest)

    def make(klass: type, current: Any, path: str) -> Any:
        changes = dict(values.get(path.rstrip("."), {}))
        types = field_types(klass)
        for f in dataclasses.fields(klass):
            if dataclasses.is_dataclass(types[f.name]):
                changes[f.name] = make(types[f.name], getattr(current, f.name), f"{path}{f.name}.")
        return dataclasses.replace(current, **changes)

    return make(cls, base, "")


def shared_fields(cls: type, other: type) -> tuple[str, ...]:
    """The plain (not nested) fields of `cls` that `other` has too: settings a command reads
    once, from `other`, for both."""
    theirs = {f.name for f in dataclasses.fields(other)}
    types = field_types(cls)
    return tuple(f.name for f in dataclasses.fields(cls)
                 if f.name in theirs and not dataclasses.is_dataclass(types[f.name]))  # fmt: skip
