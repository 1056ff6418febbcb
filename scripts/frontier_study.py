"""Issue 23's measurement: do EigenShift's directions promote toxic words, on the published
singular basis and on the toxic-word basis, and what does every method remove within +10%
perplexity on one frontier?

One gathering of evidence (the default, labelled) serves every EigenShift fit. For each basis and
k, the toxic-word share of the selected directions against chance; then both bases, ProFS,
steering and Linear-AcT tuned by the same rule on validation prompts and evaluated once on
disjoint test prompts (tune/frontier.png draws the frontier).

    .venv/bin/python scripts/frontier_study.py --out runs/frontier-study
    .venv/bin/python scripts/frontier_study.py --out runs/zero-study --only-eigenshift --zero
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

import torch

from eigenshift import load_model
from eigenshift.data import load_labelled
from eigenshift.engines.generation import SamplingConfig
from eigenshift.evaluation import EvalConfig
from eigenshift.evidence import EvidenceConfig, gather
from eigenshift.interventions import (
    EigenShift,
    EigenShiftConfig,
    LinearAcT,
    MeanDifferenceSteering,
    ProFS,
)
from eigenshift.interventions.eigenshift.decomposition import toxic_word_basis
from eigenshift.scoring.vocabulary import TokenJudgement, promoted_shares, share_summary
from eigenshift.studies.demo import ACT_TEXTS, BASELINE_TEXTS, on_data, reused
from eigenshift.studies.tune import TuneConfig, tune

KS = (1, 2, 4, 8, 16, 32)


def held_out_shares(lm, states) -> dict:
    """The toxic-word basis fitted on half of the toxic words (seeded), its share measured on the
    other half only (the fitted half counts as neither toxic nor eligible): the share out of
    sample, against 200 random directions judged the same way. Both halves in turn."""
    judged = states.vocabulary
    weight = lm.unembedding.weight.detach()
    toxic = torch.nonzero(judged.toxic).squeeze(1)
    order = toxic[torch.randperm(len(toxic), generator=torch.Generator().manual_seed(0))]
    halves = order[: len(order) // 2], order[len(order) // 2 :]
    random = torch.randn(weight.shape[1], 200, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(1))  # fmt: skip
    out = {}
    for name, (fit_on, measure_on) in {"a->b": halves, "b->a": halves[::-1]}.items():
        mask = torch.zeros_like(judged.toxic)
        mask[fit_on] = True
        _, v = toxic_word_basis(weight, mask)
        eligible = judged.eligible.clone()
        eligible[fit_on] = False
        other = torch.zeros_like(judged.toxic)
        other[measure_on] = True
        held = TokenJudgement(eligible, other, judged.judge)
        pool = promoted_shares(weight, random, held)
        out[name] = {k: asdict(share_summary(promoted_shares(weight, v[:, :k], held), pool, held,
                                             "200 random directions of h"))
                     for k in KS}  # fmt: skip
    return {name: {k: {key: s[key] for key in ("selected", "selected_interval", "chance",
                                               "chance_interval")} for k, s in rows.items()}
            for name, rows in out.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--out", type=Path, default=Path("runs/basis-study"))
    parser.add_argument("--validation", type=int, default=60)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--clean-texts", type=int, default=100)
    parser.add_argument("--shares-only", action="store_true")
    parser.add_argument("--only-eigenshift", action="store_true")
    parser.add_argument("--zero", action="store_true",
                        help="also the toxic-word basis dampened towards zero (plain weights)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lm = load_model(args.model)
    states = gather(lm, EvidenceConfig())
    assert states.vocabulary is not None
    fits = {"eigenshift": EigenShift.fit_statistics(lm, EigenShiftConfig(basis="singular"),
                                                     states),
            "eigenshift-toxic-words": EigenShift.fit_statistics(
                lm, EigenShiftConfig(basis="toxic-words"), states)}  # fmt: skip
    if args.zero:
        fits["eigenshift-toxic-words-zero"] = EigenShift.fit_statistics(
            lm, EigenShiftConfig(basis="toxic-words", dampen="zero"), states)
    paper = EigenShift.fit_statistics(lm, EigenShiftConfig(recipe="paper", k_fraction=0.25),
                                      states)  # fmt: skip
    shares = {name: {k: asdict(fit.token_share(fit.intervention(k).tensors["indices"]))
                     for k in KS} for name, fit in fits.items()}  # fmt: skip
    shares["paper-k25%"] = {paper.intervention().k: asdict(paper.token_share(
        paper.intervention().tensors["indices"]))}  # fmt: skip
    record = {"vocabulary": {"judge": states.vocabulary.judge,
                             "eligible": int(states.vocabulary.eligible.sum()),
                             "toxic": int(states.vocabulary.toxic.sum()),
                             "base_rate": states.vocabulary.base_rate},
              "shares": {name: {k: {key: s[key] for key in ("selected", "selected_interval",
                                                            "chance", "chance_interval", "band",
                                                            "band_best")}
                                for k, s in rows.items()} for name, rows in shares.items()}}
    record["held_out_words"] = held_out_shares(lm, states)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "shares.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))
    for name, fit in fits.items():
        print(name, fit.intervention(2).describe(lm), sep="\n")
    if args.shares_only:
        return
    settings = TuneConfig(validation_prompts=args.validation, test_prompts=args.test,
                          ks=KS, alphas=(0.5, 0.0))  # fmt: skip
    evaluation = EvalConfig(sampling=SamplingConfig(samples=args.samples),
                            clean_texts=args.clean_texts)  # fmt: skip
    methods: dict = dict(fits)
    if not args.only_eigenshift:
        data = load_labelled("default", max_examples=BASELINE_TEXTS)
        act_data = load_labelled("default", max_examples=ACT_TEXTS)
        makers = {"profs": (data, lambda: ProFS.fit(lm, data=data)),
                  "steer": (data, lambda: MeanDifferenceSteering.fit(lm, data=data)),
                  "linear-act": (act_data, lambda: LinearAcT.fit(lm, data=act_data))}
        for name, (texts, make) in makers.items():
            methods[name] = reused(lm, args.out / name, on_data(name, texts.hash()), make)
    summary = tune(lm, methods, settings, evaluation, args.out / "tune")
    print(json.dumps({"chosen": summary["chosen"], "test": summary["test"]}, indent=1,
                     default=str))  # fmt: skip


if __name__ == "__main__":
    main()
