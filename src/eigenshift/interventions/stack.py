"""Stacking: several fitted interventions applied together, in order, as one artifact that every
room takes like any other (evaluate, tune, explain, bake, export).

The artifact holds each member's tensors under its position (`0.directions`, `1.vector`) and
each member's description (method, parameters, hashes, data, seed, statistics) in `members`, so a
stack is read back as its members and checked by their own rules. Members are fitted on the
original model, not on each other; their edits are installed in order (hooks at one site run in
that order) and folded in the order that reproduces it (`edits.fold_order`). The last member's
strength, where it has one, is the stack's knob: `tune` varies it on top of the others' points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

from ..core.errors import ArtifactError, InputError
from ..models import LanguageModel
from .artifact import ArtifactMeta
from .base import FitInputs, Intervention, Shapes, method_class, register
from .configs import StackConfig
from .edits import Edit

# What a member's entry in `params["members"]` holds, and each field's type.
MEMBER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "method": str, "params": dict, "weight_hashes": dict, "data_hashes": dict,
    "seed": (int, type(None)), "stats": dict,
}  # fmt: skip


@register
class Stack(Intervention):
    """stack: apply fitted interventions together, in order, as one edit."""

    method = "stack"
    config_class = StackConfig
    needs = ("members",)
    knobs = ("strength",)

    @classmethod
    def fit_inputs(
        cls, lm: LanguageModel, config: StackConfig, inputs: FitInputs, progress: bool
    ) -> Self:
        assert inputs.members is not None  # the base checked `needs`
        for member in inputs.members:
            member.check_compatible(lm)
        stack = cls.of(inputs.members)
        return stack if config.strength is None else stack.with_params(strength=config.strength)

    @classmethod
    def of(cls, members: Sequence[Intervention]) -> Self:
        """The members (a stack among them contributes its own), in the order given."""
        flat = [m for member in members
                for m in (member.members() if isinstance(member, Stack) else [member])]  # fmt: skip
        if len(flat) < 2:
            raise InputError(f"a stack needs two or more interventions, got {len(flat)}")
        hashes: dict[str, str] = {}
        for member in flat:
            for module, digest in member.meta.weight_hashes.items():
                if hashes.setdefault(module, digest) != digest:
                    raise InputError(
                        f"the stacked '{member.method}' was fitted on other weights of "
                        f"'{module}' than an earlier member: fit every member on the same model"
                    )
        entries = [{"method": m.method, "params": m.params, "weight_hashes": m.meta.weight_hashes,
                    "data_hashes": m.meta.data_hashes, "seed": m.meta.seed,
                    "stats": m.meta.stats} for m in flat]  # fmt: skip
        # copies: members may share storage (one fit's tensors), which safetensors refuses
        tensors = {f"{i}.{name}": t.detach().clone() for i, m in enumerate(flat)
                   for name, t in m.tensors.items()}  # fmt: skip
        strength = flat[-1].params.get("strength") if "strength" in flat[-1].knobs else None
        data = {f"{i}.{key}": digest for i, m in enumerate(flat)
                for key, digest in m.meta.data_hashes.items()}  # fmt: skip
        meta = ArtifactMeta(cls.method, {"members": entries, "strength": strength},
                            flat[0].meta.model, hashes, data_hashes=data,
                            stats={"methods": [m.method for m in flat]})  # fmt: skip
        return cls(tensors, meta)

    def members(self) -> list[Intervention]:
        """Each member as its own method's intervention, checked by that method's rules."""
        entries = self.params.get("members")
        if not isinstance(entries, list) or len(entries) < 2:
            raise ArtifactError("this 'stack' artifact's 'members' must list two or more "
                                "interventions: stack them again")  # fmt: skip
        members: list[Intervention] = []
        for i, entry in enumerate(entries):
            bad = [] if isinstance(entry, dict) else ["it is not an object"]
            bad += [f"'{k}'" for k, kind in MEMBER_FIELDS.items() if not isinstance(entry, dict)
                    or not isinstance(entry.get(k), kind) or isinstance(entry.get(k), bool)]
            if not bad and entry["method"] == self.method:
                bad = ["a stack inside a stack"]
            if bad:
                raise ArtifactError(f"this 'stack' artifact's member {i} is damaged "
                                    f"({', '.join(bad)}): stack it again")  # fmt: skip
            prefix = f"{i}."
            tensors = {name.removeprefix(prefix): t for name, t in self.tensors.items()
                       if name.startswith(prefix)}  # fmt: skip
            meta = ArtifactMeta(entry["method"], entry["params"], self.meta.model,
                                entry["weight_hashes"], entry["data_hashes"], entry["seed"],
                                entry["stats"], self.meta.versions, self.meta.created)  # fmt: skip
            members.append(method_class(entry["method"])(tensors, meta))
        return members

    def shapes(self, lm: LanguageModel | None) -> Shapes:
        shapes: Shapes = {}
        for i, member in enumerate(self.members()):
            shapes.update({f"{i}.{name}": s for name, s in member.shapes(lm).items()})
        return shapes

    def is_index(self, name: str) -> bool:
        position, _, inner = name.partition(".")
        members = self.members()
        return position.isdigit() and int(position) < len(members) and members[
            int(position)].is_index(inner)  # fmt: skip

    def check(self, lm: LanguageModel | None = None) -> None:
        super().check(lm)
        members = self.members()
        union: dict[str, str] = {}
        for member in members:
            member.check(lm)
            union |= member.meta.weight_hashes
        if union != self.meta.weight_hashes:
            raise ArtifactError("this 'stack' artifact's weight hashes are not its members': "
                                "stack it again")  # fmt: skip
        last = members[-1]
        want = last.params.get("strength") if "strength" in last.knobs else None
        if self.params.get("strength") != want:
            raise ArtifactError("this 'stack' artifact's strength differs from its last "
                                "member's: stack it again")  # fmt: skip

    def with_params(self, **changes: Any) -> Self:
        """The last member at another strength (the others as they are)."""
        members = self.members()
        if "strength" in changes and self.params.get("strength") is None:
            raise InputError(f"this stack's last member, '{members[-1].method}', has no "
                             "strength to change: put a member with one last")  # fmt: skip
        changed = super().with_params(**changes)  # refuses unknown knobs and bad values
        last = members[-1].with_params(**{k: changed.params[k] for k in changes})
        return type(self).of([*members[:-1], last])

    def edits(self, lm: LanguageModel) -> list[Edit]:
        return [edit for member in self.members() for edit in member.edits(lm)]

    def weights_only(self) -> Intervention | None:
        kept = [w for m in self.members() if (w := m.weights_only()) is not None]
        return None if not kept else kept[0] if len(kept) == 1 else type(self).of(kept)

    @property
    def prefix(self) -> str:
        """The members' prefixes, the last nearest the prompt."""
        return "".join(member.prefix for member in self.members())

    def describe(self, lm: LanguageModel) -> str:
        return "stack: " + "; then ".join(m.describe(lm) for m in self.members())
