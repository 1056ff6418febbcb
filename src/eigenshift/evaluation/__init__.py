"""Evaluation: toxicity of generations, perplexity, fluency, TPH, intervals; plan, collect and
summarise over a run folder. Names load on first use (`core.lazy`): `evaluation.config` alone
stays free of torch."""

from typing import TYPE_CHECKING

from ..core.lazy import lazy_names

if TYPE_CHECKING:
    from .config import ORIGINAL, EvalConfig
    from .fluency import degenerate_reason, distinct_n
    from .harness import evaluate
    from .metrics import bootstrap_toxicity, relative_change, toxicity_metrics, tph
    from .perplexity import perplexities, sequence_nll
    from .plan import Plan, plan, select_prompts
    from .run import RunFolder
    from .summary import summarise

__getattr__, __dir__ = lazy_names(__name__, {
    "ORIGINAL": "config", "EvalConfig": "config",
    "degenerate_reason": "fluency", "distinct_n": "fluency", "evaluate": "harness",
    "bootstrap_toxicity": "metrics", "relative_change": "metrics", "toxicity_metrics": "metrics",
    "tph": "metrics", "perplexities": "perplexity", "sequence_nll": "perplexity",
    "Plan": "plan", "plan": "plan", "select_prompts": "plan", "RunFolder": "run",
    "summarise": "summary",
})  # fmt: skip
__all__ = ["ORIGINAL", "EvalConfig", "Plan", "RunFolder", "bootstrap_toxicity",
           "degenerate_reason", "distinct_n", "evaluate", "perplexities", "plan",
           "relative_change", "select_prompts", "sequence_nll", "summarise", "toxicity_metrics",
           "tph"]  # fmt: skip
