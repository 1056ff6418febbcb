"""Operating points, shared by `tune` and `sweep`: how a method's grid is named and built, one
typed row of a point's metrics, and the rules that pick a point, so that a new method's grid or
a new rule is written once and both studies read the same numbers the same way."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..evaluation import ORIGINAL
from ..interventions import EigenShiftFit, Intervention

# The columns each study writes per point, in the order its JSON has always had them.
TUNE_COLUMNS = ("method", "toxic_fraction", "expected_max_toxicity",
                "relative_expected_max_toxicity", "perplexity", "relative_perplexity",
                "degenerate_share", "flag_degenerate", "tph", "original")  # fmt: skip
M = TypeVar("M")
SWEEP_COLUMNS = ("method", "toxic_fraction", "expected_max_toxicity", "perplexity",
                 "relative_perplexity", "relative_expected_max_toxicity", "tph",
                 "degenerate_share", "flag_degenerate")  # fmt: skip


def grid_name(prefix: str, k: int, alpha: float) -> str:
    """An EigenShift point's name: the fit (method or recipe), then k and alpha."""
    return f"{prefix}-k{k}-a{alpha:g}"


def strength_name(name: str, strength: float) -> str:
    return f"{name}-s{strength:g}"


def eigenshift_points(
    prefix: str, fit: EigenShiftFit, ks: Sequence[int], alphas: Sequence[float]
) -> dict[str, Intervention]:
    """k x alpha from one fit: choosing k and alpha needs no refit."""
    return {grid_name(prefix, k, a): fit.intervention(k, a) for k in ks for a in alphas}


def has_strength(intervention: Intervention) -> bool:
    """Whether the method has a strength to vary (a stack only when its last member has one)."""
    return "strength" in intervention.knobs and intervention.params.get("strength") is not None


def strength_points(
    name: str, intervention: Intervention, strengths: Sequence[float]
) -> dict[str, Intervention]:
    """One point per strength for methods with that knob (steering, Linear-AcT, a stack whose
    last member has one); a method without it has a single point, itself."""
    if not has_strength(intervention):
        return {name: intervention}
    return {strength_name(name, s): intervention.with_params(strength=float(s))
            for s in strengths}  # fmt: skip


def method_points(
    name: str,
    method: EigenShiftFit | Intervention,
    ks: Sequence[int],
    alphas: Sequence[float],
    strengths: Sequence[float],
) -> dict[str, Intervention]:
    """The grid of any method: EigenShift's from its fit, everyone else's by strength."""
    if isinstance(method, EigenShiftFit):
        return eigenshift_points(name, method, ks, alphas)
    return strength_points(name, method, strengths)


def disjoint_grids(
    methods: Mapping[str, M], grid_of: Callable[[str, M], dict[str, Intervention]],
    taken: Iterable[str] = (ORIGINAL,),
) -> dict[str, dict[str, Intervention]]:
    """Each method's grid of points, under a name whose points shadow no point before it (nor
    `taken`): a method named like another's point (a --with folder called `matched-k1-a0`)
    is numbered (`matched-k1-a0-2`) instead of silently replacing that point."""
    grids: dict[str, dict[str, Intervention]] = {}
    used = set(taken)
    for name, method in methods.items():
        base, number = name, 1
        grid = grid_of(base, method)
        while base in grids or base in used or used & set(grid):
            number += 1
            base = f"{name}-{number}"
            grid = grid_of(base, method)
        grids[base] = grid
        used |= set(grid)
    return grids


@dataclass(frozen=True)
class Point:
    """One operating point's metrics, as the rules read them. None where the metrics row does
    not carry a value: perplexity and what follows from it for a point a tune never measured,
    `flag_degenerate` for the original (nothing to compare it with)."""

    method: str
    toxic_fraction: float | None = None
    expected_max_toxicity: float | None = None
    relative_expected_max_toxicity: float | None = None
    perplexity: float | None = None
    relative_perplexity: float | None = None
    degenerate_share: float | None = None
    flag_degenerate: bool | None = None
    tph: float | None = None

    @classmethod
    def from_metrics(cls, row: Mapping[str, Any]) -> Point:
        """From a row of `evaluate(...)["methods"]` (or a study's JSON); other keys ignored."""
        return cls(
            method=row["method"],
            toxic_fraction=row.get("toxic_fraction"),
            expected_max_toxicity=row.get("expected_max_toxicity"),
            relative_expected_max_toxicity=row.get("relative_expected_max_toxicity"),
            perplexity=row.get("perplexity"),
            relative_perplexity=row.get("relative_perplexity"),
            degenerate_share=row.get("degenerate_share"),
            flag_degenerate=row.get("flag_degenerate"),
            tph=row.get("tph"),
        )

    @property
    def original(self) -> bool:
        return self.method == ORIGINAL

    def as_dict(self, columns: Sequence[str] = TUNE_COLUMNS) -> dict[str, Any]:
        """The study's JSON row: `columns` in order, `flag_degenerate` only where compared."""
        return {c: getattr(self, c) for c in columns
                if not (c == "flag_degenerate" and self.flag_degenerate is None)}  # fmt: skip

    def within(self, limit: float) -> bool:
        """Perplexity measured and risen at most `limit` (relative)."""
        return self.relative_perplexity is not None and self.relative_perplexity <= limit

    def trade_off(self) -> tuple[float, float]:
        """(perplexity, toxic fraction): the sweep's two axes, both to be minimised."""
        if self.perplexity is None or self.toxic_fraction is None:
            raise ValueError(f"{self.method}: no perplexity or toxic fraction to place it by")
        return self.perplexity, self.toxic_fraction


def points_of(rows: Iterable[Mapping[str, Any]]) -> list[Point]:
    return [Point.from_metrics(r) for r in rows]


class Rule(Protocol):
    """How a study picks one operating point among `names`, from their metrics and the
    original's; None when no point meets it."""

    def choose(self, points: Sequence[Point], names: Collection[str]) -> str | None: ...

    def describe(self) -> str:
        """The rule in words, with its limit, as a summary records it."""
        ...


@dataclass(frozen=True)
class LowestToxicityWithinPerplexity:
    """`tune`'s rule: the largest drop in expected maximum toxicity among points whose
    perplexity rises at most `limit` and whose degenerate share does not rise significantly.
    Toxicity is the quantity tuned; perplexity and degenerate text are the price capped."""

    limit: float

    def describe(self) -> str:
        return ("largest drop in expected maximum toxicity on the validation prompts, among "
                f"points with perplexity at most +{self.limit:.0%} and no significant rise in "
                "degenerate continuations")  # fmt: skip

    @staticmethod
    def candidates(points: Sequence[Point], names: Collection[str]) -> list[Point]:
        """The points of `names` the rule may choose before perplexity is known (no
        significant rise in degenerate continuations, expected maximum toxicity below the
        original's), the lowest expected maximum toxicity first: the order in which a lazy
        tune measures perplexity, whatever the limit."""
        base = next(p for p in points if p.original).expected_max_toxicity
        if base is None:
            return []
        lower = [(p.expected_max_toxicity, p) for p in points
                 if p.method in names and not p.flag_degenerate
                 and p.expected_max_toxicity is not None
                 and p.expected_max_toxicity < base]  # fmt: skip
        return [p for _, p in sorted(lower, key=lambda pair: pair[0])]

    def choose(self, points: Sequence[Point], names: Collection[str]) -> str | None:
        eligible = [p for p in self.candidates(points, names) if p.within(self.limit)]
        return eligible[0].method if eligible else None


@dataclass(frozen=True)
class BestTPHWithinPerplexity:
    """`sweep`'s rule: the highest TPH among points whose perplexity rises at most `limit`
    without significantly more degenerate text; TPH already weighs toxicity against perplexity,
    the limit keeps it from trading away fluency the user would notice."""

    limit: float

    def describe(self) -> str:
        return (f"highest TPH with perplexity within +{100 * self.limit:.0f}% and no "
                "significant rise in degenerate continuations")  # fmt: skip

    def best(self, points: Sequence[Point], names: Collection[str]) -> Point | None:
        scored = [(p.tph, p) for p in points
                  if p.method in names and not p.original and p.within(self.limit)
                  and not p.flag_degenerate and p.tph is not None]  # fmt: skip
        return max(scored, key=lambda pair: pair[0])[1] if scored else None

    def choose(self, points: Sequence[Point], names: Collection[str]) -> str | None:
        best = self.best(points, names)
        return best.method if best else None

    def reason(self, best: Point | None) -> str:
        """Why `best` won, or why nothing did."""
        if best is None:
            return (f"no grid point keeps perplexity within +{100 * self.limit:.0f}% without "
                    "more degenerate text")  # fmt: skip
        return self.describe().replace("highest TPH", f"highest TPH ({best.tph:.1f})", 1)
