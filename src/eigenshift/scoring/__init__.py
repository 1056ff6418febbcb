"""Toxicity scorers behind one protocol, and token attribution against any of them."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import ScorerError
from .attribution import Attribution, attribute_tokens, occlusion, token_pieces
from .base import Scorer, vocabulary_of
from .bilstm import BiLSTMScorer
from .hf import HFClassifierScorer
from .profanity import ProfanityScorer


def load_scorer(spec: str = "default", **kwargs) -> Scorer:
    """`default`/`bilstm[:label]`, `profanity`, or a Hugging Face classifier id or folder."""
    name, _, option = spec.partition(":")
    if name in ("default", "bilstm", "jigsaw-bilstm"):
        return BiLSTMScorer(label=option or "toxic", **kwargs)
    if name in ("profanity", "alt-profanity-check"):
        return ProfanityScorer()
    target = spec.removeprefix("hf:")
    path = Path(target).expanduser()
    if target.startswith((".", "/", "~")) and not path.exists():
        raise ScorerError(f"scorer folder does not exist: {target}")
    return HFClassifierScorer(str(path) if path.exists() else target, **kwargs)


__all__ = [
    "Attribution",
    "BiLSTMScorer",
    "HFClassifierScorer",
    "ProfanityScorer",
    "Scorer",
    "attribute_tokens",
    "load_scorer",
    "occlusion",
    "token_pieces",
    "vocabulary_of",
]
