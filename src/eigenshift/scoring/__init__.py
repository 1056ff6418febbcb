"""Toxicity scorers behind one protocol, and token attribution against any of them. Names load on
first use (`core.lazy`)."""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:
    from .attribution import Attribution, attribute_tokens, occlusion, token_pieces
    from .base import Scorer, vocabulary_of
    from .bilstm import BiLSTMScorer
    from .hf import HFClassifierScorer
    from .load import load_scorer
    from .profanity import ProfanityScorer

__getattr__, __dir__ = lazy_names(__name__, {
    "Attribution": "attribution", "attribute_tokens": "attribution", "occlusion": "attribution",
    "token_pieces": "attribution", "Scorer": "base", "vocabulary_of": "base",
    "BiLSTMScorer": "bilstm", "HFClassifierScorer": "hf", "load_scorer": "load",
    "ProfanityScorer": "profanity",
})  # fmt: skip
__all__ = ["Attribution", "BiLSTMScorer", "HFClassifierScorer", "ProfanityScorer", "Scorer",
           "attribute_tokens", "load_scorer", "occlusion", "token_pieces", "vocabulary_of"]
