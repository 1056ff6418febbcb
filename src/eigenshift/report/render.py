"""`write_report(run_dir)`: report.md and a self-contained report.html (figures inlined) from the
files an evaluation wrote; it can be rerun at any time without touching the model."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Any

from ..core.io import write_text_atomic
from ..evaluation.config import ORIGINAL, TASK_INFO
from ..evaluation.run import RunFolder
from .table import (
    columns,
    legend,
    markdown_table,
    measured_tasks,
    score_words,
    side_words,
    table_rows,
)


def _load(run: RunFolder) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    metrics = run.metrics()
    return metrics, list(run.store().rows.values())


_MARKDOWN = re.compile(r"([\\`*_\[\]|#])")


def md_text(text: str) -> str:
    """Text from data (prompts, continuations, tokens) as inert markdown: no HTML, no markup,
    one line; a report must show what the model wrote, not run it."""
    return _MARKDOWN.sub(r"\\\1", html.escape(" ".join(str(text).split()), quote=False))


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _ci(pair) -> str:
    return f"[{100 * pair[0]:.2f}, {100 * pair[1]:.2f}]"


def _findings(metrics: dict[str, Any]) -> list[str]:
    """Plain sentences on what differs from the original beyond noise, and what to distrust."""
    notes = []
    unwanted = side_words(metrics)[0]
    for row in metrics["methods"]:
        if row["method"] == ORIGINAL:
            continue
        name, iv = row["method"], row["intervals"]
        for key, label, unit in (
            ("toxic_fraction", f"{unwanted} fraction", "percentage points"),
            ("expected_max_toxicity", score_words(unwanted)[0], "score"),
        ):
            lo, hi = iv[key]["diff_ci"]
            if iv[key]["within_noise"]:
                verdict = "within noise"
            else:
                verdict = "lower than the original" if hi < 0 else "higher than the original"
            scale = 100 if unit == "percentage points" else 1
            notes.append(
                f"{name}: {label} {verdict} (difference [{scale * lo:.3f}, {scale * hi:.3f}] "
                f"{unit}, 95% CI)."
            )
        if row.get("flag_degenerate"):
            notes.append(
                f"WARNING {name}: significantly more degenerate continuations than the original "
                f"({_pct(row['degenerate_share'])}); a word-level scorer reads garbage as safe, so "
                + ("its toxicity figures are not evidence of detoxification." if unwanted ==
                   "toxic" else f"its {unwanted} figures are not evidence of fewer {unwanted} "
                   "continuations.")
            )
    return notes


def _examples(rows: list[dict[str, Any]], methods: list[str], k: int = 3) -> list[tuple[str, list]]:
    out = []
    for name in methods:
        mine = sorted((r for r in rows if r["method"] == name), key=lambda r: -r["score"])[:k]
        out.append((name, mine))
    return out


def _directions(run: RunFolder) -> dict[str, Any] | None:
    """The explained EigenShift directions, when the run folder holds them."""
    rows = run.explanation()
    if rows is None:
        return None
    shares = [r.get("toxic_word_share") for r in rows]
    unwanted = str(rows[0].get("unwanted", "toxic")) if rows else "toxic"
    header = ("rank", "direction", "singular value", "delta", f"{unwanted} words",
              f"{unwanted} side", "other side")  # fmt: skip
    body = [
        (str(r["rank"]), r["spectrum_position"], f"{r['singular_value']:.3f}",
         f"{r['delta']:+.4f}", "" if share is None else f"{100 * share:.0f}%",
         " ".join(t.strip() or repr(t) for t in r["toxic_side_tokens"]),
         " ".join(t.strip() or repr(t) for t in r["other_side_tokens"]))
        for r, share in zip(rows, shares, strict=True)
    ]  # fmt: skip
    summary = rows[0].get("token_share") if rows else None
    caption = (
        "Tokens each dampened direction promotes (W v_i oriented by delta_i): the edit lowers "
        f"the {unwanted}-side logits. Singular vectors are defined up to sign; delta fixes it."
        + (f" {summary[0].upper()}{summary[1:]}." if summary else "")
    )
    markdown = [caption, "", f"![delta spectrum]({RunFolder.SPECTRUM})", "",
                "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]  # fmt: skip
    markdown += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in body]
    return {"header": header, "rows": body, "caption": caption, "markdown": markdown,
            "figure": run.file(RunFolder.SPECTRUM)}  # fmt: skip


def _frontier(run: RunFolder) -> Path | None:
    """The frontier figure of the tune whose test prompts `run` holds, if there is one."""
    path = run.path.parent / RunFolder.FRONTIER  # the tune's folder, one level up
    tuned = run.path.name == "test" and (run.path.parent / RunFolder.TUNE).is_file()
    return path if tuned and path.is_file() else None


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """report.md and report.html (with figures) of an evaluation folder; the folder is locked
    while they are written, so a report never reads a run that is still writing."""
    run = RunFolder(run_dir)
    run.metrics()  # not an evaluation folder: say so before anything else
    with run.lock():
        return _write_report(run)


def _write_report(run: RunFolder) -> dict[str, Path]:
    import eigenshift.report.figures as figures  # matplotlib loads only when a report is drawn

    metrics, rows = _load(run)
    methods = [r["method"] for r in metrics["methods"]]
    scores = {m: [r["score"] for r in rows if r["method"] == m] for m in methods}
    figs = {
        "tradeoff": figures.tradeoff(metrics, run.file(RunFolder.TRADEOFF)),
        "bars": figures.bars(metrics, run.file(RunFolder.BARS)),
        "scores": figures.score_distribution(
            scores, metrics["threshold"], run.file(RunFolder.SCORES), side_words(metrics)[0]
        ),
    }
    model = metrics.get("model", {})
    config: dict[str, Any] = metrics["config"] if isinstance(metrics.get("config"), dict) else {}
    behaviour = str(config.get("behaviour", "toxicity"))
    sides = side_words(metrics)
    preference = [TASK_INFO[t][0] for t in measured_tasks(metrics)
                  if TASK_INFO[t][1] == "stereotype_share"]  # fmt: skip
    header = (
        f"Behaviour: {md_text(behaviour)} (continuations judged {md_text(sides[0])} or "
        f"{md_text(sides[-1])})."
        + (" Measured as a preference: the share of sentence pairs whose stereotypical sentence "
           f"the model finds likelier ({', '.join(preference)}; 50% is unbiased)."
           if preference else "")
        + f" Model: {model.get('name', '?')} ({model.get('source', '')}); "
        f"{metrics['n_prompts']} prompts x {metrics['samples']} samples from "
        f"{metrics.get('prompts_source', '?')}; scorer {metrics['scorer']}"
        + (f", judge {metrics['judge']}" if metrics.get("judge") else "")
        + f"; {md_text(sides[0])} if score >= {metrics['threshold']}; {metrics['bootstrap']} "
        "bootstrap resamples over prompts."
    )
    findings = _findings(metrics)
    intervals = [
        (
            r["method"],
            _pct(r["toxic_fraction"]), _ci(r["intervals"]["toxic_fraction"]["ci"]),
            f"{r['expected_max_toxicity']:.3f}",
            "[{:.3f}, {:.3f}]".format(*r["intervals"]["expected_max_toxicity"]["ci"]),
            f"{r['perplexity']:.2f}", "[{:.2f}, {:.2f}]".format(*r["perplexity_ci"]),
            str(r["n_toxic"]), str(r["n_continuations"]),
        )
        for r in metrics["methods"]
    ]  # fmt: skip
    interval_header = ("method", sides[0], "95% CI", "EMT", "95% CI", "PPL", "95% CI",
                       f"{sides[0]} n", "continuations")  # fmt: skip
    examples = _examples(rows, methods)

    md = ["# eigenshift evaluation", "", header, "", markdown_table(metrics), "", legend(metrics),
          ""]  # fmt: skip
    md += ["## Findings", "", *[f"- {n}" for n in findings or ["Only the original model."]], ""]
    md += ["## Intervals", "", "| " + " | ".join(interval_header) + " |",
           "|" + "---|" * len(interval_header)]  # fmt: skip
    md += ["| " + " | ".join(r) + " |" for r in intervals]
    frontier = _frontier(run)
    if frontier is not None:  # the test prompts of a tune: its validation frontier too
        figs["frontier"] = frontier
    md += ["", "## Figures", ""]
    md += [f"![{k}]({p.name if p.parent == run.path else '../' + p.name})"
           for k, p in figs.items()]  # fmt: skip
    directions = _directions(run)
    if directions:
        md += ["", "## EigenShift directions", "", *directions["markdown"]]
    md += ["", f"## Most {md_text(sides[0])} continuations", ""]
    for name, items in examples:
        md += [f"### {md_text(name)}", ""]
        md += [f"- {r['score']:.3f}: {md_text(r['prompt'])} **\\|** {md_text(r['continuation'])}"
               for r in items]  # fmt: skip
        md += [""]
    md_path = run.file(RunFolder.REPORT_MD)
    write_text_atomic(md_path, "\n".join(md))

    def img(path: Path) -> str:
        data = base64.b64encode(path.read_bytes()).decode()
        return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'

    def table(head, body) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        trs = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body
        )
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>eigenshift evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        ".warn{color:#a00}.legend{color:#555;font-size:90%}</style></head><body>",
        "<h1>eigenshift evaluation</h1>",
        f"<p>{esc(header)}</p>",
        table([h for h, _ in columns(metrics)], table_rows(metrics)),
        f"<p class='legend'>{esc(legend(metrics))}</p>",
        "<h2>Findings</h2><ul>",
        *[
            f"<li class='{'warn' if n.startswith('WARNING') else ''}'>{esc(n)}</li>"
            for n in findings or ["Only the original model."]
        ],
        "</ul><h2>Intervals</h2>",
        table(interval_header, intervals),
        "<h2>Figures</h2>",
        *[img(p) for p in figs.values()],
    ]
    if directions:
        parts += [
            "<h2>EigenShift directions</h2>",
            f"<p>{esc(directions['caption'])}</p>",
            img(directions["figure"]),
            table(directions["header"], directions["rows"]),
        ]
    parts.append(f"<h2>Most {esc(sides[0])} continuations</h2>")
    for name, items in examples:
        parts.append(f"<h3>{esc(name)}</h3><ul>")
        parts += [
            f"<li>{r['score']:.3f}: {esc(r['prompt'])} <b>|</b> {esc(r['continuation'])}</li>"
            for r in items
        ]
        parts.append("</ul>")
    parts.append("</body></html>")
    html_path = run.file(RunFolder.REPORT_HTML)
    write_text_atomic(html_path, "\n".join(parts))
    return {"markdown": md_path, "html": html_path, **figs}
