"""ProFS's band on a small model: the published band (blocks from 40% of the depth) against
narrower upper bands, each tuned over strength by the shared rule on validation prompts and
evaluated once on disjoint test prompts.

    .venv/bin/python scripts/profs_band_study.py --out runs/profs-band-study
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
from eigenshift.interventions import ProFS
from eigenshift.studies.demo import BASELINE_TEXTS
from eigenshift.studies.tune import TuneConfig, tune

FIRST = (0.4, 0.6, 0.8)
STRENGTHS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("runs/profs-band-study"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lm = load_model("default")
    data = load_labelled("default", max_examples=BASELINE_TEXTS)
    methods = {f"profs-from{round(100 * f)}": ProFS.fit(lm, data=data, first_layer=f)
               for f in FIRST}  # fmt: skip
    settings = TuneConfig(strengths=STRENGTHS)
    evaluation = EvalConfig(sampling=SamplingConfig(samples=4), clean_texts=100)
    summary = tune(lm, methods, settings, evaluation, args.out / "tune")
    print(json.dumps({"chosen": summary["chosen"], "test": summary["test"]}, indent=1))


if __name__ == "__main__":
    main()
