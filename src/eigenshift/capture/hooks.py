"""Temporary changes to a model, each a context manager that removes its hook on any exit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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
def hooked(
    module: nn.Module, fn: Callable[..., object], side: str = "output", *, with_kwargs: bool = False
) -> Iterator[None]:
    """torch's hook `fn` on the module's input (a pre-hook) or output, removed on any exit: the
    one place the package registers a hook (tests/test_layers.py holds every other module to
    it), so none outlives the context that installed it."""
    if side == "input":
        handle = module.register_forward_pre_hook(fn, with_kwargs=with_kwargs)
    else:
        handle = module.register_forward_hook(fn, with_kwargs=with_kwargs)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def capture(module: nn.Module, side: str = "output") -> Iterator[list[torch.Tensor]]:
    """Record the module's input or output tensor (detached) on every call."""
    records: list[torch.Tensor] = []
    with on_call(module, lambda tensor: records.append(tensor.detach()), side):
        yield records


def on_call(
    module: nn.Module, fn: Callable[[torch.Tensor], None], side: str = "output"
) -> AbstractContextManager[None]:
    """Call `fn` on the module's input or output tensor, for streaming consumers."""
    if side == "input":
        return hooked(module, lambda _m, args: fn(_first(args)), side)
    return hooked(module, lambda _m, _a, out: fn(_first(out)), side)


def transform(
    module: nn.Module, fn: Transform, side: str = "output"
) -> AbstractContextManager[None]:
    """Replace the module's input or output tensor by `fn(tensor)` while the context is open."""
    if side == "input":

        def pre(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
            return (fn(args[0]), *args[1:])

        return hooked(module, pre, side)

    def post(_m: nn.Module, _args: Any, out: Any) -> Any:
        return _replace_first(out, fn(_first(out)))

    return hooked(module, post, side)
