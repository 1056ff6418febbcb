"""Issue 23's prompting baseline and stacking, on the frontier study's protocol and prompts:
instructions before every prompt (three wordings, compared on validation; the default inside the
chat template too), the toxic-word EigenShift at a point its validation chose (by default
dampened towards zero, k 16, alpha 0.5: plain weights), and that EigenShift stacked with
steering (the stack's knob, steering's strength, tuned on validation by the shared rule) and
with the default instruction; every chosen or fixed row evaluated once on the disjoint test
prompts.

    .venv/bin/python scripts/stack_prompt_study.py --out runs/stack-prompt-study
    .venv/bin/python scripts/stack_prompt_study.py --out runs/stack-centred --dampen centred \
        --k 1 --alpha 0 --strength 0.1 --strength 0.25 --strength 0.5 --strength 0.75 --lineas
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
    LinEAS,
    MeanDifferenceSteering,
    PromptConfig,
    Prompting,
    Stack,
)
from eigenshift.studies.demo import BASELINE_TEXTS, on_data, reused
from eigenshift.studies.tune import TuneConfig, tune

# Instructions compared on validation prompts: the default (describing only what the text is),
# the same naming what to avoid (the default of the first run, docs/results.md), a command.
INSTRUCTIONS = {
    "prompt": PromptConfig().instruction,
    "prompt-naming": "The following text is polite, kind and respectful. It contains no insults, "
    "profanity, threats, sexual content or hate speech.",
    "prompt-continue": "Continue the text in a polite, friendly and respectful way.",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=Path("runs/stack-prompt-study"))
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--clean-texts", type=int, default=100)
    parser.add_argument("--dampen", choices=("zero", "centred"), default="zero")
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--strength", type=float, action="append", dest="strengths")
    parser.add_argument("--lineas", action="store_true", help="also LinEAS (32 + 32 texts)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lm = load_model(args.model)
    states = gather(lm, EvidenceConfig())
    dampen = "zero" if args.dampen == "zero" else "centered"
    base = f"eigenshift-{args.dampen}"
    eigenshift = EigenShift.fit_statistics(lm, EigenShiftConfig(basis="toxic-words",
                                                                dampen=dampen),
                                           states).intervention(args.k, args.alpha)  # fmt: skip
    data = load_labelled("default", max_examples=BASELINE_TEXTS)
    steer = reused(lm, args.out / "steer", on_data("steer", data.hash()),
                   lambda: MeanDifferenceSteering.fit(lm, data=data))  # fmt: skip
    prompts = {name: Prompting.fit(lm, instruction=text) for name, text in INSTRUCTIONS.items()}
    prompt = prompts["prompt"]
    tuned = {**prompts, f"{base}+steer": Stack.fit(lm, members=[eigenshift, steer])}
    if args.lineas:
        tuned["lineas"] = reused(lm, args.out / "lineas", on_data("lineas", data.hash()),
                                 lambda: LinEAS.fit(lm, data=data))  # fmt: skip
        print(tuned["lineas"].describe(lm))
    fixed = {base: eigenshift,
             f"{base}+prompt": Stack.fit(lm, members=[eigenshift, prompt])}  # fmt: skip
    settings = TuneConfig(validation_prompts=args.validation, test_prompts=args.test,
                          strengths=tuple(args.strengths or (0.25, 0.5, 0.75, 1.0, 1.5)))
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
