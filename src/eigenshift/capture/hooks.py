"""Temporary changes to a model, each a context manager that removes its hook on any exit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..models.sites import Site as Site  # where a hook goes; re-exported for its users

Transform = Callable[[torch.Tensor], torch.Tensor]


def _first(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    return (tensor, *value[1:]) if isinstance(value, tuple) else tensor


@contextmanager
def capture(module: nn.Module, side: str = "output") -> Iterator[list[torch.Tensor]]:
    """Record the module's input or output tensor (detached) on every call."""
    records: list[torch.Tensor] = []
    if side == "input":
        handle = module.register_forward_pre_hook(
            lambda _m, args: records.append(_first(args).detach())
        )
    else:
        handle = module.register_forward_hook(
            lambda _m, _a, out: records.append(_first(out).detach())
        )
    try:
        yield records
    finally:
        handle.remove()


@contextmanager
def on_call(module: nn.Module, fn: Callable[[torch.Tensor], None], side: str = "output"):
    """Call `fn` on the module's input or output tensor, for streaming consumers."""
    if side == "input":
        handle = module.register_forward_pre_hook(lambda _m, args: fn(_first(args)))
    else:
        handle = module.register_forward_hook(lambda _m, _a, out: fn(_first(out)))
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def transform(module: nn.Module, fn: Transform, side: str = "output") -> Iterator[None]:
    """Replace the module's input or output tensor by `fn(tensor)` while the context is open."""
    if side == "input":

        def pre(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return (fn(args[0]), *args[1:])

        handle = module.register_forward_pre_hook(pre)
    else:

        def post(_m: nn.Module, _args: Any, out: Any) -> Any:
            return _replace_first(out, fn(_first(out)))

        handle = module.register_forward_hook(post)
    try:
        yield
    finally:
        handle.remove()
