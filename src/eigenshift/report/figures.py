"""Figures of an evaluation, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ..core.io import save_figure
from .table import score_words, side_words


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
    unwanted = side_words(metrics)[0]
    ax.set_xlabel("perplexity on clean text")
    ax.set_ylabel(f"{unwanted} continuations (%)")
    ax.set_title(f"{'toxicity' if unwanted == 'toxic' else unwanted} vs fluency (lower left is "
                 "better)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def bars(metrics: dict[str, Any], path: Path) -> Path:
    """Per-method bars with 95% bootstrap intervals for each toxicity figure."""
    names = [r["method"] for r in metrics["methods"]]
    unwanted = side_words(metrics)[0]
    emt, probability = score_words(unwanted)
    keys = [
        ("toxic_fraction", f"{unwanted} fraction"),
        ("expected_max_toxicity", emt.replace("maximum", "max")),
        ("toxicity_probability", probability),
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
    return save_figure(fig, path)


def score_distribution(
    scores: dict[str, list[float]], threshold: float, path: Path, unwanted: str = "toxic"
) -> Path:
    """Histogram of continuation scores per method (log count: the unwanted tail is small)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41).tolist()
    for name, values in scores.items():
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5, label=name)
    ax.axvline(threshold, color="grey", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel(f"{'toxicity' if unwanted == 'toxic' else unwanted} score of a continuation")
    ax.set_ylabel("continuations")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _relative(row: dict[str, Any], base: dict[str, Any]) -> tuple[float, float, list[float]]:
    """(PPL change %, EMT change %, EMT change's paired 95% interval in %) of a metrics row."""
    emt, change = base["expected_max_toxicity"], 100 * row["relative_expected_max_toxicity"]
    diff = row["intervals"]["expected_max_toxicity"].get("diff_ci")
    ci = [100 * d / emt for d in diff] if diff and emt else [change, change]  # none: no bar
    return 100 * row["relative_perplexity"], change, ci


def frontier(
    validation: dict[str, Any], test: dict[str, Any] | None, grids: dict[str, list[str]],
    chosen: dict[str, str | None], limit: float, path: Path,
) -> Path:  # fmt: skip
    """Every method's validation curve (EMT change against perplexity change, paired 95%
    intervals), the perplexity limit, the chosen points ringed and their test results as stars:
    which method removes most at each fluency budget. Points whose perplexity the tune never
    measured (its rule could not choose them) are left out and counted in the title."""
    rows = {r["method"]: r for r in validation["methods"]}
    base = rows["original"]
    tested = {r["method"]: r for r in (test or {}).get("methods", [])}
    fig, ax = plt.subplots(figsize=(7, 4.6))
    unmeasured, lowest = 0, -2.0  # the leftmost perplexity change drawn
    for i, (name, points) in enumerate(grids.items()):
        colour = f"C{i % 10}"
        measured = [rows[p] for p in points if p in rows and rows[p]["relative_perplexity"]
                    is not None]  # fmt: skip
        unmeasured += sum(p in rows for p in points) - len(measured)
        placed = sorted((_relative(r, base) for r in measured), key=lambda t: t[0])
        if placed:
            x, y, ci = zip(*placed, strict=True)
            lowest = min(lowest, 1.2 * min(x))
            err = np.abs(np.array(ci).T - np.array(y))
            ax.errorbar(x, y, yerr=err, fmt="-o", color=colour, markersize=4, capsize=2,
                        linewidth=1, label=name)  # fmt: skip
        pick = chosen.get(name)
        if pick and pick in rows and rows[pick]["relative_perplexity"] is not None:
            px, py, _ = _relative(rows[pick], base)
            ax.scatter([px], [py], s=160, facecolors="none", edgecolors=colour, linewidths=1.5)
        test_row = tested.get(name)  # the chosen point, evaluated under its method's name
        if test_row is not None and test_row.get("relative_perplexity") is not None:
            tbase = tested["original"]
            tx, ty, tci = _relative(test_row, tbase)
            ax.errorbar([tx], [ty], yerr=np.abs(np.array([tci]).T - ty), fmt="*", color=colour,
                        markersize=12, capsize=3)  # fmt: skip
    ax.axvline(100 * limit, color="grey", linestyle="--", linewidth=1)
    ax.axhline(0, color="grey", linewidth=0.6)
    # linear up to the limit, logarithmic beyond: a broken point (+2000%) squeezes nothing
    ax.set_xscale("symlog", linthresh=max(100 * limit, 1.0))
    ax.set_xlim(left=lowest)
    ax.set_xlabel("perplexity change on clean text (%, logarithmic past the limit)")
    ax.set_ylabel(f"{score_words(side_words(validation)[0])[0]} change (%)")
    note = f"; {unmeasured} points without perplexity left out" if unmeasured else ""
    ax.set_title("validation frontier (o chosen, * on test prompts)" + note, fontsize=9)
    if ax.get_legend_handles_labels()[1]:  # a curve was drawn
        ax.legend(fontsize=8)
    return save_figure(fig, path)
