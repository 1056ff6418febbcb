"""Issue 12's measurement: EigenShift on labelled evidence, centered (hook) and zero (bakeable)
dampening, and the two steering baselines, each tuned on validation prompts by the same rule and
budget, then evaluated once on disjoint test prompts.

    .venv/bin/python scripts/tune_study.py --model default --out runs/tune-study
    .venv/bin/python scripts/tune_study.py --model gemma-3-270m --out runs/tune-study-gemma \
        --validation 24 --test 60 --samples 2 --clean-texts 40 --k 1 --k 2 --alpha 0.5 \
        --alpha 0 --strength 0.5 --strength 1 --strength 1.5 --strength 2 --no-zero
    # the default clean budget: EigenShift alone on 10,000 clean states, tuned by the same rule,
    # with the 40,000-state run's chosen edit beside it on the same test prompts
    .venv/bin/python scripts/tune_study.py --out runs/tune-study-10k --clean-budget 10000 \
        --eigenshift-only --fixed eigenshift-40k=runs/tune-study/tune/chosen/eigenshift
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
from eigenshift.evidence import EvidenceConfig, EvidenceRule, gather
from eigenshift.interventions import (
    EigenShift,
    EigenShiftConfig,
    LinearAcT,
    MeanDifferenceSteering,
    load_intervention,
)
from eigenshift.interventions.eigenshift.method import EigenShiftFit
from eigenshift.studies.demo import ACT_TEXTS, BASELINE_TEXTS, on_data, reused
from eigenshift.studies.tune import TuneConfig, tune


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=Path("runs/tune-study"))
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--clean-texts", type=int, default=100)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--k", type=int, action="append")
    parser.add_argument("--alpha", type=float, action="append")
    parser.add_argument("--strength", type=float, action="append")
    parser.add_argument("--no-zero", action="store_true", help="leave out zero dampening")
    parser.add_argument("--clean-budget", type=int, default=EvidenceRule().clean_budget)
    parser.add_argument("--eigenshift-only", action="store_true",
                        help="tune centered EigenShift alone (no zero form, no steering)")
    parser.add_argument("--fixed", action="append", default=[], metavar="NAME=DIR",
                        help="a saved intervention evaluated beside the tuned ones on test")
    parser.add_argument("--fit-alpha", type=float, default=EigenShiftConfig().alpha,
                        help="the fit config's alpha (each grid point sets its own; the "
                             "default model's run began with -0.5, the default then)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lm = load_model(args.model)
    config = EigenShiftConfig(alpha=args.fit_alpha, basis="singular")  # issue 12's basis
    evidence = EvidenceConfig(rule=EvidenceRule(clean_budget=args.clean_budget))
    states = gather(lm, evidence)
    centered = EigenShift.fit_statistics(lm, config, states)
    logging.info("fit: %s", centered.intervention().describe(lm))
    settings = TuneConfig(validation_prompts=args.validation, test_prompts=args.test,
                          ks=tuple(args.k or (2, 4, 8, 16)),
                          alphas=tuple(args.alpha or (0.0, -1.0, -3.0)),
                          strengths=tuple(args.strength or (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)))
    evaluation = EvalConfig(sampling=SamplingConfig(samples=args.samples),
                            clean_texts=args.clean_texts)  # fmt: skip
    fixed = {name: load_intervention(folder, lm) for name, folder in
             (spec.split("=", 1) for spec in args.fixed)}  # fmt: skip
    if args.eigenshift_only:
        summary = tune(lm, {"eigenshift": centered}, settings, evaluation, args.out / "tune",
                       fixed=fixed)  # fmt: skip
        report(summary, centered)
        return
    zero = EigenShift.fit_statistics(lm, replace(config, dampen="zero"), states)
    data = load_labelled("default", max_examples=BASELINE_TEXTS)
    act_data = load_labelled("default", max_examples=ACT_TEXTS)
    steer = reused(lm, args.out / "steer", on_data("steer", data.hash()),
                   lambda: MeanDifferenceSteering.fit(lm, data=data))  # fmt: skip
    act = reused(lm, args.out / "linear-act", on_data("linear-act", act_data.hash()),
                 lambda: LinearAcT.fit(lm, data=act_data))  # fmt: skip
    methods = {"eigenshift": centered, "eigenshift-zero": zero, "steer": steer, "linear-act": act}
    if args.no_zero:
        del methods["eigenshift-zero"]
    summary = tune(lm, methods, settings, evaluation, args.out / "tune", fixed=fixed)
    report(summary, centered)


def report(summary: dict, fit: EigenShiftFit) -> None:
    stats = fit.meta.stats
    print(json.dumps({"chosen": summary["chosen"], "test": summary["test"],
                      "stability": stats["stability"],
                      "states": {k: stats[k] for k in ("toxic_states", "clean_states", "labelled")},
                      "evidence_seconds": stats.get("seconds")},
                     indent=1, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
