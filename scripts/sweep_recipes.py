"""The first recipe comparison in docs/results.md: one generation pass, three variants of the
fit statistics (paper; matched; paper's zero-dampening with matched contrast and standardized
score), a k x alpha grid each, through the harness.

    .venv/bin/python scripts/sweep_recipes.py OUT_DIR
"""

import json
import sys
from dataclasses import replace

from eigenshift import SamplingConfig, load_model
from eigenshift.evaluation import EvalConfig
from eigenshift.evidence import EvidenceConfig, gather
from eigenshift.interventions import EigenShift, EigenShiftConfig
from eigenshift.studies.sweep import eigenshift_grid, run_sweep

lm = load_model("default")
base = EigenShiftConfig(recipe="paper", basis="singular")  # the recipes as issue 12 compared them
states = gather(lm, EvidenceConfig(evidence="generated", fit_prompts=300), progress=False)
variants = {
    "paper": EigenShift.fit_statistics(lm, base, states),
    "matched": EigenShift.fit_statistics(lm, replace(base, recipe="matched"), states),
    "mz": EigenShift.fit_statistics(
        lm, replace(base, contrast="matched", score="standardized"), states
    ),
}
ev = EvalConfig(max_prompts=60, sampling=SamplingConfig(samples=4), clean_texts=100,
                bootstrap=500, judge="profanity")
grid = eigenshift_grid(variants, [5, 29], [0.0, 0.5])
print(json.dumps(run_sweep(lm, grid, ev, sys.argv[1]), indent=1))
