"""Issue 23's prompting baseline and stacking, on the frontier study's protocol and prompts: the
instruction before every prompt (raw text, and inside the chat template), the toxic-word
EigenShift at the point its validation chose (dampened towards zero, k 16, alpha 0.5: plain
weights), and that EigenShift stacked with steering (the stack's knob, steering's strength,
tuned on validation by the shared rule) and with the instruction; every row evaluated once on the
disjoint test prompts.

    .venv/bin/python scripts/stack_prompt_study.py --out runs/stack-prompt-study
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

from eigenshift import load_model
from eigenshift.data import load_labelled
from eigenshift.engines.generation import SamplingConfig
from eigenshift.evaluation import EvalConfig
from eigenshift.evidence import EvidenceConfig, gather
from eigenshift.interventions import (
    EigenShift,
    EigenShiftConfig,
    MeanDifferenceSteering,
    Prompting,
    Stack,
)
from eigenshift.studies.demo import BASELINE_TEXTS, on_data, reused
from eigenshift.studies.tune import TuneConfig, tune


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=Path("runs/stack-prompt-study"))
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--clean-texts", type=int, default=100)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=0.5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lm = load_model(args.model)
    states = gather(lm, EvidenceConfig())
    zero = EigenShift.fit_statistics(lm, EigenShiftConfig(basis="toxic-words", dampen="zero"),
                                     states).intervention(args.k, args.alpha)  # fmt: skip
    data = load_labelled("default", max_examples=BASELINE_TEXTS)
    steer = reused(lm, args.out / "steer", on_data("steer", data.hash()),
                   lambda: MeanDifferenceSteering.fit(lm, data=data))  # fmt: skip
    prompt = Prompting.fit(lm)
    tuned = {"prompt": prompt, "eigenshift-zero+steer": Stack.fit(lm, members=[zero, steer])}
    fixed = {"eigenshift-zero": zero,
             "eigenshift-zero+prompt": Stack.fit(lm, members=[zero, prompt])}  # fmt: skip
    settings = TuneConfig(validation_prompts=args.validation, test_prompts=args.test,
                          strengths=(0.25, 0.5, 0.75, 1.0, 1.5))  # fmt: skip
    evaluation = EvalConfig(sampling=SamplingConfig(samples=args.samples),
                            clean_texts=args.clean_texts)  # fmt: skip
    summary = tune(lm, tuned, settings, evaluation, args.out / "tune", fixed=fixed)
    print(json.dumps({"chosen": summary["chosen"], "test": summary["test"]}, indent=1,
                     default=str))  # fmt: skip
    # The instruction inside the chat template's user message, on the same test prompts.
    from eigenshift.data import load_prompts
    from eigenshift.evaluation import evaluate
    from eigenshift.studies.tune import only

    test = summary["prompts"]["test"]
    chat = replace(evaluation, sampling=replace(evaluation.sampling, chat_template="user"))
    chat = only(chat, test, len(load_prompts(evaluation.prompts)))
    metrics = evaluate(lm, {"prompt": prompt}, chat, args.out / "chat")
    print(json.dumps(metrics["methods"], indent=1, default=str))

if __name__ == "__main__":
    main()
