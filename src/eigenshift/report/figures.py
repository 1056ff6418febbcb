"""Figures of an evaluation, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tradeoff(metrics: dict[str, Any], path: Path) -> Path:
    """Toxic fraction against clean-text perplexity, with 95% intervals on both."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for row in metrics["methods"]:
        x, y = row["perplexity"], 100 * row["toxic_fraction"]
        (xlo, xhi), (ylo, yhi) = row["perplexity_ci"], row["intervals"]["toxic_fraction"]["ci"]
        ax.errorbar(
            x, y, xerr=[[x - xlo], [xhi - x]], yerr=[[y - 100 * ylo], [100 * yhi - y]],
            fmt="o", capsize=3, label=row["method"],
        )  # fmt: skip
    ax.set_xlabel("perplexity on clean text")
    ax.set_ylabel("toxic continuations (%)")
    ax.set_title("toxicity vs fluency (lower left is better)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def bars(metrics: dict[str, Any], path: Path) -> Path:
    """Per-method bars with 95% bootstrap intervals for each toxicity figure."""
    names = [r["method"] for r in metrics["methods"]]
    keys = [
        ("toxic_fraction", "toxic fraction"),
        ("expected_max_toxicity", "expected max toxicity"),
        ("toxicity_probability", "toxicity probability"),
        ("degenerate_share", "degenerate share"),
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3.6))
    for ax, (key, label) in zip(axes, keys, strict=True):
        values = np.array([r[key] for r in metrics["methods"]])
        cis = np.array(
            [
                r["degenerate_ci"] if key == "degenerate_share" else r["intervals"][key]["ci"]
                for r in metrics["methods"]
            ]
        )
        err = np.clip(np.stack([values - cis[:, 0], cis[:, 1] - values]), 0, None)
        ax.bar(range(len(names)), values, yerr=err, capsize=3, color="C0")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
    return _save(fig, path)


def score_distribution(scores: dict[str, list[float]], threshold: float, path: Path) -> Path:
    """Histogram of continuation scores per method (log count: the toxic tail is small)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41).tolist()
    for name, values in scores.items():
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5, label=name)
    ax.axvline(threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("toxicity score of a continuation")
    ax.set_ylabel("continuations")
    ax.legend(fontsize=8)
    return _save(fig, path)
