"""Edits as data: what a method does to a model, as (site, function, affine form).

A method returns a list of `Edit`s; the base installs them all in one context (hooks that are
always removed) and bakes every one that has an affine form through `fold`, the one place that
writes weights. The affine form acting on a row vector a at a site is

    a -> a * scale - (a @ right) @ left.T + shift

(any part may be absent): a per-unit scale and shift (AurA, Det-0, Damp, Linear-AcT), a low-rank
projection (EigenShift), or a shift alone (steering). Folding it into a linear layer is exact:
on its input side W' = W diag(scale) - (W left) right^T and b' = b + W shift; on its output side
W' = diag(scale) W - left (right^T W) and b' = the same map applied to b. A shift needs a bias;
the unembedding is given one where its architecture has none (a constant logit shift, which an
export carries as a logit bias that generation applies); an MLP projection of a family whose
config can switch MLP biases on (`mlp_bias`: Llama, SmolLM, Granite and kin) gets zero biases on
every MLP projection and the flag set (`bias_room`), so the saved folder loads as it was baked;
any other layer refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..capture.hooks import Site, capture, transform
from ..core.errors import NotBakeableError
from ..models import LanguageModel
from ..models.architecture import is_conv1d, weight_of
from ..models.placement import is_offloaded, is_quantized

PROBE = "The quick brown fox jumps over the lazy dog, and then it rests."


@dataclass(frozen=True)
class Affine:
    """a -> a * scale - (a @ right) @ left.T + shift, on the last dimension."""

    scale: torch.Tensor | None = None  # (n,)
    shift: torch.Tensor | None = None  # (n,)
    left: torch.Tensor | None = None  # (n, r)
    right: torch.Tensor | None = None  # (n, r)

    @property
    def has_shift(self) -> bool:
        return self.shift is not None and bool(torch.any(self.shift != 0))


@dataclass(frozen=True)
class Edit:
    """One change at one site: `fn` is what the hook does; `affine` the same map as weights can
    hold it (None: no weight can), folded at `fold_at` (default: the site itself). A fold at
    another site is checked against the hook on a probe input and undone if they disagree."""

    site: Site
    fn: Callable[[torch.Tensor], torch.Tensor]
    affine: Affine | None = None
    fold_at: Site | None = None
    why_not: str = ""  # why no weight can hold the edit, when affine is None
    hint: str = ""  # what to do instead, added to any refusal to bake

    @property
    def target(self) -> Site:
        return self.fold_at or self.site


@contextmanager
def installed(lm: LanguageModel, edits: Sequence[Edit]) -> Iterator[None]:
    """Every edit as a hook for the duration of the block; all removed on any exit."""
    with ExitStack() as stack:
        for edit in edits:
            module = lm.module(edit.site.module)
            stack.enter_context(transform(module, edit.fn, side=edit.site.side))
        yield


def _refuse(edit: Edit, reason: str) -> NotBakeableError:
    hint = edit.hint or "apply it with a hook (`with intervention.applied(model):`)"
    return NotBakeableError(f"{reason}: {hint}")


def check_foldable(lm: LanguageModel, edits: Sequence[Edit], method: str) -> None:
    """Refuse before anything is written, so a refusal never leaves a model half-baked."""
    for edit in edits:
        if edit.affine is None:
            raise _refuse(edit, edit.why_not or f"'{method}' cannot be folded into plain weights")
        target = edit.target
        module = lm.module(target.module)
        if is_quantized(module) or is_offloaded(module):
            how = "quantized" if is_quantized(module) else "offloaded from its device"
            raise NotBakeableError(
                f"'{target.module}' is {how}, and eigenshift never writes such weights: load the "
                "model in bfloat16 or float32 (no --quantize, no disk offload) to bake or export; "
                "hooks work as loaded"
            )
        if not (isinstance(module, nn.Linear) or is_conv1d(module)):
            raise _refuse(edit, f"'{target}' is not a linear layer")
        gets_bias = target == Site(lm.arch.unembedding, "input")
        if edit.affine.has_shift and getattr(module, "bias", None) is None and not gets_bias:
            raise _refuse(edit, f"the edit at '{edit.site}' adds a constant, and "
                                f"'{target.module}' has no bias to fold it into")  # fmt: skip


MLP_PROJECTION = re.compile(r"\.mlp\.[A-Za-z_]+_proj$")


def _needs_room(lm: LanguageModel, edits: Sequence[Edit]) -> bool:
    """A shift folds into an MLP projection that has no bias, and the config can give all of
    them one (`mlp_bias` off)."""
    if getattr(lm.model.config, "mlp_bias", None) is not False:
        return False
    if any(MLP_PROJECTION.search(n) and (is_quantized(m) or is_offloaded(m))
           for n, m in lm.model.named_modules()):  # fmt: skip
        return False  # never written: `check_foldable` says why
    return any(e.affine is not None and e.affine.has_shift and MLP_PROJECTION.search(
        e.target.module) and getattr(lm.module(e.target.module), "bias", None) is None
        for e in edits)  # fmt: skip


def grow_biases(lm: LanguageModel, edits: Sequence[Edit]) -> list[str]:
    """Zero biases on every MLP projection and `mlp_bias` on, when a shift needs a bias there
    (`_needs_room`): the model computes the same, and a saved folder's config builds those
    biases on loading. Returns the modules given one."""
    if not _needs_room(lm, edits):
        return []
    names = [n for n, m in lm.model.named_modules()
             if MLP_PROJECTION.search(n) and isinstance(m, nn.Linear) and m.bias is None]
    for name in names:
        module = lm.module(name)
        weight = weight_of(module)
        module.bias = nn.Parameter(torch.zeros(weight.shape[0], dtype=weight.dtype,
                                               device=weight.device))  # fmt: skip
    lm.model.config.mlp_bias = True
    return names


@contextmanager
def bias_room(lm: LanguageModel, edits: Sequence[Edit]) -> Iterator[None]:
    """`grow_biases` for the block: the biases removed, and the flag put back, on any exit."""
    if not _needs_room(lm, edits):
        yield
        return
    names = [n for n, m in lm.model.named_modules() if MLP_PROJECTION.search(n)]
    with lm.weights_kept(names):
        try:
            grow_biases(lm, edits)
            yield
        finally:
            lm.model.config.mlp_bias = False


def _map_rows(affine: Affine, x: torch.Tensor, shift: bool) -> torch.Tensor:
    """The affine map (optionally without its shift) on the rows of x, in x's dtype."""
    out = x
    if affine.scale is not None:
        out = out * affine.scale.to(x)
    if affine.left is not None and affine.right is not None:
        out = out - (x @ affine.right.to(x)) @ affine.left.to(x).T
    if shift and affine.shift is not None:
        out = out + affine.shift.to(x)
    return out


def fold(lm: LanguageModel, site: Site, affine: Affine) -> None:
    """Write the affine map at `site` into its module's weights, computed in float64."""
    if site.module == lm.arch.unembedding:
        lm.untie_unembedding()  # a tied weight is never edited in place
    module = lm.module(site.module)
    weight, bias = weight_of(module), getattr(module, "bias", None)
    if bias is None and affine.has_shift and site == Site(lm.arch.unembedding, "input"):
        bias = lm.unembedding_bias()  # the shift becomes a constant on every logit
    w = weight.detach().double()
    w_oi = w.T if is_conv1d(module) else w  # (out, in); Conv1D stores the transpose
    with torch.no_grad():
        if site.side == "input":
            # y = W A a + W shift, and the rows of W A are the transposed map of W's rows
            transposed = replace(affine, left=affine.right, right=affine.left)
            new_w = _map_rows(transposed, w_oi, shift=False)
            new_b = None
            if bias is not None:
                new_b = bias.double()
                if affine.has_shift:
                    new_b = new_b + w_oi @ affine.shift.to(w_oi)  # type: ignore[union-attr]
        else:
            new_w = _map_rows(affine, w_oi.T, shift=False).T
            new_b = None if bias is None else _map_rows(affine, bias.double(), shift=True)
        weight.copy_((new_w.T if is_conv1d(module) else new_w).to(weight.dtype))
        if bias is not None and new_b is not None:
            bias.copy_(new_b.to(bias.dtype))


def fold_order(edits: Sequence[Edit]) -> list[Edit]:
    """The order in which folding reproduces the hooks' composition. Hooks at one site run in
    the order installed; a fold on a module's output side multiplies from the left, so it
    follows that order, but a fold on its input side multiplies from the right, so the later
    hook must be folded first (W A2 A1 for A1 then A2). Folds at different modules commute."""
    inputs = [e for e in edits if e.target.side == "input"]
    return [*reversed(inputs), *(e for e in edits if e.target.side != "input")]


def _probe_outputs(lm: LanguageModel, sites: Sequence[Site]) -> list[torch.Tensor]:
    batch = lm.encode([PROBE])
    with torch.inference_mode(), ExitStack() as stack:
        records = [stack.enter_context(capture(lm.module(s.module), s.side)) for s in sites]
        lm.model(**batch.model_inputs())
    return [r[0] for r in records]


def _agree(expected: torch.Tensor, got: torch.Tensor) -> bool:
    """The fold reproduces the hook up to the dtype's rounding: the relative error over the
    whole output (one bfloat16 rounding moves single elements of a large activation by far
    more than an elementwise tolerance allows, and the whole by about 1e-4)."""
    a, b = expected.double(), got.double()
    tolerance = max(1e-4, torch.finfo(expected.dtype).eps / 2)
    return bool((a - b).norm() <= tolerance * a.norm())


def fold_all(
    lm: LanguageModel,
    edits: Sequence[Edit],
    method: str,
    hooked: Callable[[], AbstractContextManager[Any]],
) -> None:
    """Fold every edit, after checking all of them. An edit folded away from its own site (a
    bias standing in for a residual shift) is verified on a probe against `hooked`, a context
    that applies the hooks; on disagreement every weight written is put back."""
    check_foldable(lm, edits, method)
    moved = [e.site for e in edits if e.fold_at is not None and e.fold_at != e.site]
    expected: list[torch.Tensor] = []
    if moved:
        with hooked():
            expected = _probe_outputs(lm, moved)
    # Only a fold that needs checking keeps a copy to put back (the unembedding is large).
    saved = {}
    for edit in edits if moved else ():
        module = lm.module(edit.target.module)
        for name, param in module.named_parameters(recurse=False):
            saved[(edit.target.module, name)] = param.detach().clone()
    for edit in fold_order(edits):
        fold(lm, edit.target, edit.affine)  # type: ignore[arg-type]
    if moved:
        got = _probe_outputs(lm, moved)
        if not all(_agree(a, b) for a, b in zip(expected, got, strict=True)):
            with torch.no_grad():
                for (module_name, name), value in saved.items():
                    getattr(lm.module(module_name), name).copy_(value)
            raise NotBakeableError(
                f"folding '{method}' into {', '.join(str(e.target) for e in edits)} does not "
                f"reproduce the hook at {', '.join(map(str, moved))}: in this {lm.arch.family} "
                "model the output is transformed (e.g. normalised) on the way, so a bias cannot "
                "carry the edit: apply it with a hook"
            )
