"""Which capability tasks resolve at these sizes: each packaged model's accuracy on every local
task (the original model, no edit), with a bootstrap 95% interval, beside chance.

    .venv/bin/python scripts/capability_tasks.py --limit 400 > capability_tasks.json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from eigenshift import load_model
from eigenshift.evaluation.capability import TASKS, task_correct


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--limit", type=int, default=400, help="questions per task")
    parser.add_argument("--models", nargs="+", default=["default", "gemma-3-270m"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for spec in args.models:
        lm = load_model(spec, dtype="float32")
        for name in args.tasks:
            t0 = time.perf_counter()
            correct = np.asarray(task_correct(lm, task=name, limit=args.limit, batch_size=16))
            means = correct[rng.integers(0, len(correct), (1000, len(correct)))].mean(1)
            row = {"model": spec, "task": name, "metric": TASKS[name].metric,
                   "questions": len(correct), "accuracy": float(correct.mean()),
                   "ci": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))],
                   "chance": TASKS[name].chance(), "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
