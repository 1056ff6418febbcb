"""explain.md and the delta spectrum of an EigenShift artifact: the tokens each removed direction
promotes (`interventions.eigenshift.tokens`), its stability, and where it sits in the spectrum."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import InputError
from ..core.io import save_figure, write_text_atomic
from ..data.behaviour import judged_side
from ..evaluation.run import RunFolder
from ..interventions import EigenShift
from ..interventions.eigenshift.tokens import directions
from ..models import LanguageModel
from .configs import ExplainConfig


def delta_spectrum(intervention: EigenShift, path: Path) -> Path:
    """Selection score of every direction against its place in the singular spectrum."""
    from .figures import plt
    scores = intervention.tensors["scores"].numpy()
    s = intervention.tensors["singular_values"].numpy()
    chosen = intervention.tensors["indices"].numpy()
    fig, ax1 = plt.subplots(figsize=(7, 3.8))
    ax1.plot(range(len(scores)), scores, color="C0", linewidth=0.8, label="selection score")
    ax1.scatter(chosen, scores[chosen], color="C3", s=14, zorder=3, label="selected")
    ax1.set_xlabel("direction (by singular value, largest first)")
    ax1.set_ylabel("selection score")
    ax2 = ax1.twinx()
    ax2.plot(range(len(s)), s, color="grey", linewidth=0.8, linestyle="--")
    ax2.set_ylabel("singular value", color="grey")
    ax1.legend(loc="upper center", fontsize=8)
    ax1.set_title(f"EigenShift directions (k={len(chosen)}, alpha={intervention.alpha:g})")
    return save_figure(fig, path)


def _interval(bounds: list[float] | None) -> str:
    return f" [{bounds[0]:.3f}, {bounds[1]:.3f}]" if bounds else ""


def _share(share: float | None) -> str:
    return f"{100 * share:.0f}%" if share is not None else ""


def _stability_lines(intervention: EigenShift) -> list[str]:
    """What the evidence supports: states per source, and how two disjoint halves agree."""
    stats = intervention.meta.stats
    halves = stats.get("stability", {}).get("halves", {})
    unwanted = judged_side(intervention.meta.behaviour)
    lines = [f"Evidence: {stats.get('toxic_states')} {unwanted} and {stats.get('clean_states')} "
             "clean states" + "".join(f"; {name}: {stats[name]['toxic_states']} {unwanted}"
                                for name in ("generated", "labelled") if name in stats) + "."]
    if halves.get("per_k"):
        lines += ["", "Two disjoint halves of the texts, fitted apart (subspace similarity: mean "
                  "squared cosine of the principal angles; chance: k/d):", "",
                  "| k | subspace similarity | index overlap | chance |", "|---|---|---|---|"]
        lines += [f"| {r['k']} | {r['subspace_similarity']:.3f} | {r['index_overlap']:.3f} | "
                  f"{r['chance']:.3f} |" for r in halves["per_k"]]
        lines += ["", f"Rank correlation of all directions' scores between the halves: "
                  f"{halves['score_rank_correlation']:.3f}. Score intervals and 'in top k' "
                  "(the share of bootstrap resamples of the texts in which the direction is "
                  "selected) below."]
    return [*lines, ""]


def _token_share_lines(rows: list[dict], unwanted: str) -> list[str]:
    """Whether the directions mean the behaviour: their unwanted-word share against chance."""
    line = rows[0].get("token_share") if rows else None
    if not line:
        return []
    return [f"Do the directions promote {unwanted} words? {line[0].upper()}{line[1:]}. Each "
            f"token is judged as a word on its own; '{unwanted} words' below is each "
            "direction's share.", ""]


def _cell(tokens: list[str]) -> str:
    return " ".join(f"`{t.strip() or repr(t)}`".replace("|", "\\|") for t in tokens)


def write_explanation(
    lm: LanguageModel, intervention: EigenShift, out: str | Path,
    top: int = ExplainConfig.top,
) -> dict[str, Path]:
    from ..interventions import META_FILE

    with RunFolder(out).lock(also_ours=(META_FILE, RunFolder.EXPLAIN)) as folder:  # re-entrant
        return _write_explanation(lm, intervention, folder, top)


def _write_explanation(
    lm: LanguageModel, intervention: EigenShift, folder: RunFolder, top: int
) -> dict[str, Path]:
    rows = directions(lm, intervention, top)
    unwanted = judged_side(intervention.meta.behaviour)
    figure = delta_spectrum(intervention, folder.file(RunFolder.SPECTRUM))
    p = intervention.params
    lines = [
        "# EigenShift directions",
        "",
        f"Model {lm.name}; recipe {p.get('recipe')} (contrast {p.get('contrast')}, score "
        f"{p.get('score')}, dampen {p.get('dampen')}, basis {p.get('basis', 'singular')}); "
        f"k = {intervention.k}, "
        f"alpha = {intervention.alpha:g}. {unwanted.capitalize()} side: the tokens whose logits "
        f"rise when a state moves along the direction the way {unwanted} states do; the edit "
        "lowers them.",
        "",
        f"![delta spectrum]({figure.name})",
        "",
        *_stability_lines(intervention),
        *_token_share_lines(rows, unwanted),
        f"| rank | direction | singular value | delta | score [95% CI] | in top k | {unwanted} "
        f"words | {unwanted} side | other side |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['rank']} | {r['spectrum_position']} | {r['singular_value']:.3f} | "
        f"{r['delta']:+.4f} | {r['score']:.4f}{_interval(r['score_interval'])} | "
        f"{_share(r['selected_share'])} | {_share(r.get('toxic_word_share'))} | "
        f"{_cell(r['toxic_side_tokens'])} | {_cell(r['other_side_tokens'])} |"
        for r in rows
    ]
    md = folder.file(RunFolder.EXPLAIN_MD)
    write_text_atomic(md, "\n".join(lines) + "\n")
    return {"markdown": md, "figure": figure, "json": folder.write_json(RunFolder.EXPLAIN, rows)}


def explain_artifact(
    folder: str | Path, model: str | None = None, out: str | Path | None = None,
    top: int = ExplainConfig.top,
) -> dict[str, Path]:
    """Explain the EigenShift artifact in `folder` (or a stack's one EigenShift member) on
    `model` (default: the model it was fitted on), writing into `out` (default: the artifact's
    folder)."""
    from ..interventions import META_FILE, load_intervention, read_meta
    from ..interventions.stack import Stack
    from ..models import load_model

    meta = read_meta(folder)
    with RunFolder(out or folder).lock(also_ours=(META_FILE, RunFolder.EXPLAIN)):  # before loading
        lm = load_model(model or meta.model)
        intervention = load_intervention(folder, lm)
        if isinstance(intervention, Stack):  # a stack's EigenShift member, when it has one
            inner = [m for m in intervention.members() if isinstance(m, EigenShift)]
            intervention = inner[0] if len(inner) == 1 else intervention
        if not isinstance(intervention, EigenShift):
            raise InputError(f"explain reads EigenShift artifacts, not '{intervention.method}'")
        return write_explanation(lm, intervention, out or folder, top)
