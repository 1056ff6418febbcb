"""`load_scorer(spec)`: a scorer by name, imported only when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import ScorerError
from ..core.io import refuse_special
from .base import Scorer


def load_scorer(spec: str = "default", **kwargs: Any) -> Scorer:
    """`default`/`bilstm[:label]`, `profanity`, `vader[:negative|positive]` (sentiment), or a
    Hugging Face classifier id or folder."""
    name, _, option = spec.partition(":")
    if name in ("default", "bilstm", "jigsaw-bilstm"):
        from .bilstm import BiLSTMScorer

        return BiLSTMScorer(label=option or "toxic", **kwargs)
    if name in ("profanity", "alt-profanity-check"):
        from .profanity import ProfanityScorer

        return ProfanityScorer()
    if name == "vader":
        from .vader import VaderScorer

        return VaderScorer(option or "negative")  # type: ignore[arg-type]  # checked there
    target = spec.removeprefix("hf:")
    path = Path(target).expanduser()
    refuse_special(path, ScorerError)
    if target.startswith((".", "/", "~")) and not path.exists():
        raise ScorerError(f"scorer folder does not exist: {target}")
    from .hf import HFClassifierScorer

    return HFClassifierScorer(str(path) if path.exists() else target, **kwargs)
