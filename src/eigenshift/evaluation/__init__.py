"""Evaluation: toxicity of generations, perplexity, fluency, TPH, intervals; plan, collect and
summarise over a run folder."""

from .fluency import degenerate_reason, distinct_n
from .harness import evaluate
from .metrics import bootstrap_toxicity, relative_change, toxicity_metrics, tph
from .perplexity import perplexities, sequence_nll
from .plan import ORIGINAL, EvalConfig, Plan, plan, select_prompts
from .run import RunFolder
from .summary import summarise

__all__ = [
    "ORIGINAL",
    "EvalConfig",
    "Plan",
    "RunFolder",
    "bootstrap_toxicity",
    "degenerate_reason",
    "distinct_n",
    "evaluate",
    "perplexities",
    "plan",
    "relative_change",
    "select_prompts",
    "sequence_nll",
    "summarise",
    "toxicity_metrics",
    "tph",
]
