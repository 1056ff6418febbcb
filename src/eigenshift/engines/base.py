"""One generation interface, two engines: `hf` (our own loop, the edit applied as hooks) and
`vllm` (vLLM's offline `LLM` on the edit baked into a cached export). Evaluate, the fits and tune
ask an `Engine` for continuations and hand them to the same store, scorer and metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ..models import LanguageModel
from .config import SamplingConfig
from .generation import Generation

if TYPE_CHECKING:
    from ..interventions import Intervention

log = logging.getLogger(__name__)

Advance = Callable[[int], None]


class Engine(Protocol):
    name: str

    def generate(
        self,
        lm: LanguageModel,
        intervention: Intervention | None,
        prompts: Sequence[str],
        config: SamplingConfig,
        *,
        prompt_ids: Sequence[int] | None = None,
        progress: bool = False,
        advance: Advance | None = None,
    ) -> list[Generation]:
        """`config.samples` continuations of every prompt by `lm` with `intervention`, in
        (prompt, sample) order, each row seeded by its prompt id and sample index."""
        ...

    def prepare(self, lm: LanguageModel, interventions: Sequence[Intervention]) -> None:
        """Refuse, before any work, what this engine cannot run."""
        ...
