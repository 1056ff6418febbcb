"""The neuron expert report: AUROC histogram, shares above thresholds, stability, top experts."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ..io_utils import write_text_atomic
from .neurons import NeuronScores


def write_neuron_report(scores: NeuronScores, out: str | Path, top: int = 20) -> Path:
    out = Path(out)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.hist(scores.auroc, bins=60, color="C0")
    for t in scores.meta["config"]["thresholds"]:
        ax.axvline(t, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("neuron AUROC (toxic vs non-toxic)")
    ax.set_ylabel("neurons")
    ax.set_title(f"{len(scores.auroc)} neurons, {scores.meta['n_texts']} texts")
    fig.tight_layout()
    fig.savefig(out / "auroc_histogram.png", dpi=110)
    plt.close(fig)
    m = scores.meta
    lines = [
        "# Neuron experts",
        "",
        f"Model {m['model']}; data {m['data']} ({m['n_texts']} texts, {m['n_toxic']} toxic); "
        f"{m['config']['pooling']}-pooled; {m['config']['bootstrap']} bootstrap resamples.",
        f"Max AUROC {m['max_auroc']:.3f}, mean {m['mean_auroc']:.3f}; mean bootstrap spread of a "
        f"neuron's AUROC {m['auroc_spread_mean']:.3f}.",
        "",
        "![AUROC histogram](auroc_histogram.png)",
        "",
        "| threshold | share above | experts | bootstrap Jaccard (mean / min) |",
        "|---|---|---|---|",
    ]
    for t, s in m["thresholds"].items():
        jac = (f"{s['bootstrap_jaccard_mean']:.3f} / {s['bootstrap_jaccard_min']:.3f}"
               if s["bootstrap_jaccard_mean"] is not None else "-")  # fmt: skip
        lines.append(f"| {t} | {100 * s['share_above']:.1f}% | {s['experts']} | {jac} |")
    if "data2" in m:
        d2 = m["data2"]
        lines += ["", f"Against {d2['source']} ({d2['n_texts']} texts): AUROC correlation "
                  f"{d2['auroc_correlation']:.3f}; expert-set Jaccard "
                  + ", ".join(f"{t}: {j:.3f}" for t, j in d2["jaccard"].items())]  # fmt: skip
    lines += ["", "| rank | site | unit | AUROC | AP |", "|---|---|---|---|---|"]
    for rank, i in enumerate(np.argsort(-scores.auroc)[:top], start=1):
        site, unit = scores.site_of(int(i))
        lines.append(f"| {rank} | {site} | {unit} | {scores.auroc[i]:.3f} | {scores.ap[i]:.3f} |")
    path = out / "neurons.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
