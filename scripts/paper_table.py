"""The EigenShift paper's Table 2 (toxic %, PPL, TPH) on a model that runs here: the original,
Det-0, Damp and AurA at their published settings and EigenShift at the paper's own operating
point (the paper recipe, 25% of directions, alpha 0), beside every method at the point the shared
rule chose on validation prompts (EigenShift on the toxic-word basis, centred and dampened
towards zero; steering; Linear-AcT) and the prompting baseline; all on the same disjoint test
prompts, scorer and seeds. Writes paper_table.md and paper_table.json under --out.

    .venv/bin/python scripts/paper_table.py --model default --out runs/table2-smollm2
    .venv/bin/python scripts/paper_table.py --model gemma-3-270m --out runs/table2-gemma
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from eigenshift import load_model
from eigenshift.data import load_labelled
from eigenshift.engines.generation import SamplingConfig
from eigenshift.evaluation import EvalConfig
from eigenshift.evidence import EvidenceConfig, gather
from eigenshift.interventions import (
    AurA,
    Damp,
    Det0,
    EigenShift,
    EigenShiftConfig,
    LinearAcT,
    MeanDifferenceSteering,
    Prompting,
)
from eigenshift.locate.neurons import neuron_scores_for
from eigenshift.studies.demo import ACT_TEXTS, BASELINE_TEXTS, on_data, reused
from eigenshift.studies.tune import TuneConfig, tune

PUBLISHED = ("original", "det0", "damp", "aura", "eigenshift-paper")


def table(rows: list[dict]) -> str:
    """Table 2's columns, then the EMT change with its paired interval (relative to the
    original's EMT), the perplexity change and the degenerate share."""
    lines = ["| method | toxic % | PPL | TPH | EMT | EMT change [95%] | PPL change | degenerate |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    base = rows[0]["expected_max_toxicity"]
    for r in rows:
        ci = r.get("intervals", {}).get("expected_max_toxicity", {}).get("diff_ci")
        change = "" if r["method"] == "original" else (
            f"{100 * r['relative_expected_max_toxicity']:+.1f}%"
            + (f" [{100 * ci[0] / base:+.1f}, {100 * ci[1] / base:+.1f}]" if ci else "")
        )  # fmt: skip
        lines.append(
            f"| {r['method']} | {100 * r['toxic_fraction']:.2f} | {r['perplexity']:.4g} | "
            f"{r['tph']:.1f} | {r['expected_max_toxicity']:.3f} | {change} | "
            f"{100 * r['relative_perplexity']:+.1f}% | {100 * r['degenerate_share']:.1f}% |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--dtype", default="fast")
    parser.add_argument("--out", type=Path, default=Path("runs/table2"))
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--clean-texts", type=int, default=200)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lm = load_model(args.model, dtype=args.dtype)
    out: Path = args.out
    states = gather(lm, EvidenceConfig())
    fit = EigenShift.fit_statistics  # the same evidence for every EigenShift
    paper = fit(lm, EigenShiftConfig(recipe="paper", k_fraction=0.25, alpha=0.0), states)
    data = load_labelled("default", max_examples=BASELINE_TEXTS)
    act_data = load_labelled("default", max_examples=ACT_TEXTS)
    scores = neuron_scores_for(lm, data, out / "neurons")
    h = data.hash()
    fixed = {
        "det0": reused(lm, out / "det0", on_data("det0", h), lambda: Det0.fit(lm, neurons=scores)),
        "damp": reused(lm, out / "damp", on_data("damp", h), lambda: Damp.fit(lm, neurons=scores)),
        "aura": reused(lm, out / "aura", on_data("aura", h), lambda: AurA.fit(lm, neurons=scores)),
        "eigenshift-paper": paper.intervention(),
        "prompt": Prompting.fit(lm),
    }
    tuned = {
        "eigenshift": fit(lm, EigenShiftConfig(basis="toxic-words"), states),
        "eigenshift-zero": fit(lm, EigenShiftConfig(basis="toxic-words", dampen="zero"), states),
        "steer": reused(lm, out / "steer", on_data("steer", h),
                        lambda: MeanDifferenceSteering.fit(lm, data=data)),
        "linear-act": reused(lm, out / "linear-act", on_data("linear-act", act_data.hash()),
                             lambda: LinearAcT.fit(lm, data=act_data)),
    }  # fmt: skip
    settings = TuneConfig(validation_prompts=args.validation, test_prompts=args.test,
                          ks=(1, 2, 4, 8, 16), alphas=(0.5, 0.0),
                          strengths=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0))  # fmt: skip
    evaluation = EvalConfig(sampling=SamplingConfig(samples=args.samples),
                            clean_texts=args.clean_texts)  # fmt: skip
    summary = tune(lm, tuned, settings, evaluation, out / "tune", fixed=fixed)
    tested = json.loads((out / "tune" / "test" / "metrics.json").read_text())
    rows = {r["method"]: r for r in tested["methods"]}
    order = [*PUBLISHED, *(m for m in rows if m not in PUBLISHED)]
    ordered = [rows[m] for m in order if m in rows]
    text = (f"{lm.name}, {str(lm.dtype).removeprefix('torch.')}; test: {args.test} prompts x "
            f"{args.samples}; chosen on validation: {json.dumps(summary['chosen'])}\n\n"
            + table(ordered))  # fmt: skip
    (out / "paper_table.md").write_text(text)
    (out / "paper_table.json").write_text(json.dumps(ordered, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
