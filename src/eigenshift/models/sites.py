"""Named places in a model that hooks read or change: which modules a pattern means, how many
units a site has, and which modules an edit at some sites depends on."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..core.errors import InputError
from .architecture import linear_width
from .language_model import LanguageModel


@dataclass(frozen=True)
class Site:
    """A module and which side of it we read or change: its input or its output."""

    module: str
    side: Literal["input", "output"] = "output"

    @classmethod
    def parse(cls, spec: str) -> Site:
        """`name` is the output of a module, `name:input` its first input."""
        name, _, side = spec.partition(":")
        if side not in ("", "input", "output"):
            raise InputError(f"site '{spec}': the part after ':' must be 'input' or 'output'")
        return cls(name, "input" if side == "input" else "output")

    def __str__(self) -> str:
        return self.module if self.side == "output" else f"{self.module}:input"


def resolve_sites(lm: LanguageModel, pattern: str | None, side: str = "input") -> list[str]:
    """Module names to score or edit: the MLP sites by default, else every module matching the
    fnmatch pattern; `side` input reads a module's input (the MLP hidden units of a down proj)."""
    if pattern is None:
        names = lm.arch.mlp_site_names()
    else:
        names = [n for n, _ in lm.model.named_modules() if n and fnmatch.fnmatch(n, pattern)]
        if not names:
            raise InputError(
                f"site pattern '{pattern}' matches no module; e.g. "
                f"'{lm.arch.blocks}.*.{lm.arch.mlp_site}' (see `eigenshift info`)"
            )
    return [f"{n}:input" if side == "input" else n for n in names]


def site_width(lm: LanguageModel, site: str) -> int:
    """Units at a site, read from the module's weight (no forward pass needed)."""
    parsed = Site.parse(site)
    width = linear_width(lm.module(parsed.module), parsed.side)
    if width is None:
        raise InputError(f"site '{site}' is not a linear layer; per-unit edits need one")
    return width


def check_sites(lm: LanguageModel, sites: Sequence[str], widths: Sequence[int]) -> None:
    """Scores computed on another model (or other sites) would edit the wrong units."""
    for site, width in zip(sites, widths, strict=True):
        try:
            actual = site_width(lm, site)
        except (AttributeError, KeyError) as exc:
            raise InputError(f"site '{site}' does not exist in '{lm.name}'") from exc
        if actual != width:
            raise InputError(f"site '{site}' has {actual} units in '{lm.name}' but the scores "
                             f"have {width}: they were computed on another model")  # fmt: skip


def site_modules(sites: Sequence[str]) -> list[str]:
    """The modules behind the sites: what an edit's artifact depends on."""
    return sorted({Site.parse(s).module for s in sites})
