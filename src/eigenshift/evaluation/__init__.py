"""Evaluation: toxicity of generations, perplexity, fluency, TPH, intervals, the harness."""

from .fluency import degenerate_reason, distinct_n
from .harness import ORIGINAL, EvalConfig, evaluate, select_prompts
from .metrics import bootstrap_toxicity, relative_change, toxicity_metrics, tph
from .perplexity import perplexities, sequence_nll

__all__ = [
    "ORIGINAL",
    "EvalConfig",
    "bootstrap_toxicity",
    "degenerate_reason",
    "distinct_n",
    "evaluate",
    "perplexities",
    "relative_change",
    "select_prompts",
    "sequence_nll",
    "toxicity_metrics",
    "tph",
]
