"""Package attributes that import their module on first use (PEP 562).

Every package of eigenshift re-exports its names this way, so importing a light module (a config
the command line is generated from) never pulls torch or transformers in through a package's
`__init__`: `eigenshift COMMAND --help` and a refused setting answer in a fraction of a second.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(
    package: str, where: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose name N lives in submodule `where[N]`."""

    def getattr_(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        vars(sys.modules[package])[name] = value  # found directly from now on
        return value

    def dir_() -> list[str]:
        return sorted(where)

    return getattr_, dir_

