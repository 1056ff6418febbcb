"""Vectorised AUROC and AP over every MLP unit of the default model vs a per-neuron scikit-learn
loop, side by side on the same captured activations (prints one JSON object).

    .venv/bin/python benchmarks/bench_auroc.py [--texts 2000]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from common import timed
from sklearn.metrics import average_precision_score, roc_auc_score

from eigenshift import collect_activations, load_labelled, load_model
from eigenshift.locate.stats import expert_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    lm = load_model("default")
    data = load_labelled(max_examples=args.texts, seed=0)
    sites = [s + ":input" for s in lm.arch.mlp_site_names()]
    acts, t_capture = timed(
        lambda: collect_activations(lm, data.texts, sites, pooling="max",
                                    batch_size=args.batch_size, progress=False)
    )  # fmt: skip
    x = torch.cat([acts[s] for s in sites], dim=1).numpy()  # (texts, layers * units), float32
    y = data.labels
    (auc, ap), t_ours = timed(lambda: expert_scores(x, y))

    def loop():
        return (
            np.array([roc_auc_score(y, x[:, j]) for j in range(x.shape[1])]),
            np.array([average_precision_score(y, x[:, j]) for j in range(x.shape[1])]),
        )

    (ref_auc, ref_ap), t_loop = timed(loop)
    result = {
        "benchmark": "auroc",
        "texts": len(y),
        "toxic": int(y.sum()),
        "neurons": int(x.shape[1]),
        "capture_s": round(t_capture, 1),
        "vectorised_s": round(t_ours, 3),
        "sklearn_loop_s": round(t_loop, 2),
        "ratio": round(t_loop / t_ours, 1),
        "max_abs_diff_auroc": float(np.abs(auc - ref_auc).max()),
        "max_abs_diff_ap": float(np.abs(ap - ref_ap).max()),
        "max_auroc": float(auc.max()),
        "share_auroc_above": {t: float((auc > t).mean()) for t in (0.5, 0.51, 0.52, 0.55)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
