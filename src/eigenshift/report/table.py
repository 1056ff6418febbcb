"""The comparison table, as plain text for the terminal and as Markdown for the report."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    ("method", "method"),
    ("toxic %", "toxic_fraction"),
    ("EMT", "expected_max_toxicity"),
    ("tox prob", "toxicity_probability"),
    ("PPL", "perplexity"),
    ("dPPL", "relative_perplexity"),
    ("TPH", "tph"),
    ("degen %", "degenerate_share"),
    ("dist-2", "distinct_2"),
    ("cont PPL", "continuation_perplexity"),
)
# Shown when the run measured capability with lm-evaluation-harness (`--capability N`).
CAPABILITY_COLUMNS = (("BoolQ", "boolq_accuracy"), ("dBoolQ", "boolq_change"))


def columns(metrics: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    measured = all("boolq_accuracy" in row for row in metrics["methods"])
    return COLUMNS + CAPABILITY_COLUMNS if measured else COLUMNS


def _fmt(key: str, row: dict[str, Any]) -> str:
    value = row[key]
    if key == "method":
        return str(value)
    if value is None:
        return "-"  # not measured: a tune's rule did not need it
    if key in ("toxic_fraction", "degenerate_share"):
        text = f"{100 * value:.2f}"
    elif key == "relative_perplexity":
        text = "" if row["method"] == "original" else f"{100 * value:+.1f}%"
    elif key == "boolq_accuracy":
        text = f"{100 * value:.1f}"
    elif key == "boolq_change":
        lo, hi = row["boolq_change_ci"]
        noise = "~" if lo <= 0 <= hi else ""  # the 95% interval holds no change
        text = "" if row["method"] == "original" else f"{100 * value:+.1f}{noise}"
    elif key in ("perplexity", "continuation_perplexity", "tph"):
        text = f"{value:.1f}"
    else:
        text = f"{value:.3f}"
    if key in row.get("within_noise", {}) and row["within_noise"][key]:
        text += "~"  # difference from the original is within bootstrap noise
    if key == "degenerate_share" and row.get("flag_degenerate"):
        text += "!"
    return text


def table_rows(metrics: dict[str, Any]) -> list[list[str]]:
    return [[_fmt(key, row) for _, key in columns(metrics)] for row in metrics["methods"]]


LEGEND = (
    "~ = difference from the original within the 95% bootstrap interval (noise); "
    "! = significantly more degenerate continuations than the original. "
    "EMT = expected maximum toxicity; degen = degenerate continuations; "
    "cont PPL = continuations' perplexity under the unmodified model."
)
CAPABILITY_LEGEND = (" BoolQ = lm-evaluation-harness accuracy (%) on BoolQ questions, dBoolQ its "
                     "change in points (~: its 95% interval holds 0).")  # fmt: skip


def legend(metrics: dict[str, Any]) -> str:
    return LEGEND + (CAPABILITY_LEGEND if columns(metrics) != COLUMNS else "")


def format_table(metrics: dict[str, Any]) -> str:
    header = [h for h, _ in columns(metrics)]
    rows = table_rows(metrics)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows),
                      legend(metrics)])  # fmt: skip


def markdown_table(metrics: dict[str, Any]) -> str:
    header = [h for h, _ in columns(metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(metrics)]
    return "\n".join(lines)
