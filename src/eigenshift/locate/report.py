"""Reports of the locate step: neuron experts (histogram, shares above thresholds, stability, top
experts) and layer expertise (four AUROCs and the silhouette against relative depth)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ..core.io import save_figure, write_text_atomic
from ..data.behaviour import sides_of
from .layers import LayerScores
from .neurons import NeuronScores


def write_neuron_report(scores: NeuronScores, out: str | Path, top: int = 20) -> Path:
    out = Path(out)
    u, w = sides_of(scores.meta.get("behaviour"))
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.hist(scores.auroc, bins=60, color="C0")
    for t in scores.meta["config"]["thresholds"]:
        ax.axvline(t, color="grey", linestyle="--", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(f"neuron AUROC ({u} vs {w})")
    ax.set_ylabel("neurons")
    ax.set_title(f"{len(scores.auroc)} neurons, {scores.meta['n_texts']} texts")
    save_figure(fig, out / "auroc_histogram.png")
    m = scores.meta
    lines = [
        "# Neuron experts",
        "",
        f"Model {m['model']}; data {m['data']} ({m['n_texts']} texts, {m['n_toxic']} {u}); "
        f"{m['config']['pooling']}-pooled; {m['config']['bootstrap']} bootstrap resamples.",
        f"Max AUROC {m['max_auroc']:.3f}, mean {m['mean_auroc']:.3f}; mean bootstrap spread of a "
        f"neuron's AUROC {m['auroc_spread_mean']:.3f}.",
        *_length_line(m),
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
    if "length_matched" in m:
        lm_ = m["length_matched"]
        shares = ", ".join(f"{t}: {100 * v:.1f}%" for t, v in lm_["share_above"].items())
        lines += ["", f"Length-matched ({lm_['bins']} token-count bins: {u} vs {w} texts "
                  f"of similar length): max AUROC {lm_['max_auroc']:.3f}, mean "
                  f"{lm_['mean_auroc']:.3f}, correlation with the plain AUROC "
                  f"{lm_['correlation_with_auroc']:.3f}; share above {shares}."]  # fmt: skip
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


def _length_line(meta: dict) -> list[str]:
    """Text length alone, as a unit: the bar any expert must clear to mean more than 'long'."""
    if "length_auroc" not in meta:
        return []
    return [f"Token count alone scores AUROC {meta['length_auroc']:.3f} on these labels; "
            "max-pooled units inherit it (a longer text has more chances to fire)."]


def _length_in_layers(scores: LayerScores) -> list[str]:
    if "kmeans_cluster_length_auroc" not in scores.rows[0]:
        return []
    by_length = np.nanmean(scores.column("kmeans_cluster_length_auroc"))
    line = f"Token count predicts the k-means cluster with AUROC {by_length:.3f} on average"
    if "probe_auroc_length_matched" in scores.rows[0]:
        probe = scores.column("probe_auroc_length_matched").mean()
        km = scores.column("kmeans_auroc_length_matched").mean()
        line += f"; within token-count bins the probe scores {probe:.3f} and k-means {km:.3f}"
    return [line + "."]


def _off_target_split(scores: LayerScores) -> list[str]:
    """A clean split that is not the behaviour: worth saying, and what it follows if we know."""
    sil, km = scores.column("silhouette"), scores.column("kmeans_auroc")
    off = [i for i, (a, b) in enumerate(zip(sil, km, strict=True)) if a > 0.3 and b < 0.55]
    if not off:
        return []
    line = (f"{len(off)} layers split cleanly (silhouette > 0.3) along something other than "
            f"the {' vs '.join(sides_of(scores.meta.get('behaviour')))} label (k-means AUROC "
            "< 0.55)")  # fmt: skip
    if "kmeans_cluster_length_auroc" in scores.rows[0]:
        by_length = np.nanmean(scores.column("kmeans_cluster_length_auroc")[off])
        line += f"; token count predicts those clusters with AUROC {by_length:.3f}"
    return [line + "."]


def write_layer_report(scores: LayerScores, out: str | Path) -> Path:
    u, w = sides_of(scores.meta.get("behaviour"))
    out = Path(out)
    m, depth = scores.meta, scores.column("relative_depth")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})  # fmt: skip
    highest = 0.5
    for key, label, style in (
        ("probe_auroc", "linear probe (cross-validated)", "o-"),
        ("kmeans_auroc", "k-means, k=2 (better matching)", "s-"),
        ("best_unit_auroc", "best single unit (held out)", "^-"),
        ("mean_unit_auroc", "mean single unit (held out, oriented)", "v-"),
    ):
        top.plot(depth, scores.column(key), style, label=label, markersize=4)
        highest = max(highest, float(np.nanmax(scores.column(key))))
    top.axhline(0.5, color="grey", linewidth=0.8)
    length = max(m["length_auroc"], 1 - m["length_auroc"])  # oriented, like everything here
    top.axhline(length, color="C7", linestyle=":", label="token count alone (oriented)")
    top.set_ylim(top=highest + 0.12)  # room for the legend above the lines
    top.set_ylabel(f"AUROC ({u} vs {w})")
    top.legend(fontsize=7, ncol=2, loc="upper center")
    top.set_title(f"{m['model']}: {m['config']['representation']}, "
                  f"{m['config']['pooling']}-pooled, {m['n_texts']} texts")  # fmt: skip
    bottom.plot(depth, scores.column("silhouette"), "d-", color="C4", markersize=4)
    bottom.set_ylabel("silhouette (k=2)")
    bottom.set_xlabel("relative depth")
    save_figure(fig, out / "layers.png")

    probe, km = scores.column("probe_auroc"), scores.column("kmeans_auroc")
    best = scores.rows[int(np.argmax(probe))]
    c = m["config"]
    lines = [
        "# Layer expertise",
        "",
        f"Model {m['model']}; data {m['data']} ({m['n_texts']} texts, {m['n_toxic']} {u}); "
        f"{c['representation']} vectors, {c['pooling']}-pooled; {c['folds']}-fold probe and unit "
        f"scores on the same folds; k-means on {'standardised' if c['standardize'] else 'raw'} "
        "vectors.",
        f"Mean over layers: k-means AUROC {km.mean():.3f}, probe {probe.mean():.3f}, best unit "
        f"{scores.column('best_unit_auroc').mean():.3f}, mean unit "
        f"{scores.column('mean_unit_auroc').mean():.3f}. Layers with k-means AUROC > 0.5: "
        f"{int((km > 0.5).sum())} of {len(km)}; k-means peaks at relative depth "
        f"{depth[int(np.argmax(km))]:.2f}, the probe at {best['relative_depth']:.2f} "
        f"(AUROC {best['probe_auroc']:.3f}).",
        *_length_line(m),
        *_length_in_layers(scores),
        *_off_target_split(scores),
        "",
        "![layer expertise](layers.png)",
        "",
        "Units are oriented by their training-fold sign before the held-out score; *raw* is the "
        "plain held-out mean.",
        "",
    ]
    # Columns present only when measured: the length diagnostics.
    extra = [(key, title) for key, title in (
        ("kmeans_cluster_length_auroc", "length predicts cluster"),
        ("kmeans_auroc_length_matched", "k-means, length-matched"),
        ("probe_auroc_length_matched", "probe, length-matched"),
    ) if key in scores.rows[0]]  # fmt: skip
    header = ["layer", "depth", "k-means AUROC", "silhouette", "probe AUROC", "best unit",
              "mean unit", "raw", *(title for _, title in extra)]  # fmt: skip
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in scores.rows:
        cells = [str(r["layer"]), f"{r['relative_depth']:.2f}", f"{r['kmeans_auroc']:.3f}",
                 f"{r['silhouette']:.3f}", f"{r['probe_auroc']:.3f} ± {r['probe_auroc_std']:.3f}",
                 f"{r['best_unit_auroc']:.3f}", f"{r['mean_unit_auroc']:.3f}",
                 f"{r['mean_unit_auroc_raw']:.3f}",
                 *(f"{r[key]:.3f}" for key, _ in extra)]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    path = out / "layers.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
