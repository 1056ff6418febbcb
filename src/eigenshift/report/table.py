"""The comparison table, as plain text for the terminal and as Markdown for the report."""

from __future__ import annotations

from typing import Any

from ..evaluation.config import TASK_INFO, task_measure

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
def side_words(metrics: dict[str, Any]) -> tuple[str, str]:
    """(unwanted, wanted): the run's behaviour's sides as its metrics record them; toxicity's
    for a run recorded before behaviours (`--behaviour`)."""
    from ..data.behaviour import sides_of

    config = metrics.get("config") if isinstance(metrics.get("config"), dict) else {}
    sides = config.get("sides") if config else None
    if isinstance(sides, list | tuple) and len(sides) == 2:
        return sides_of({"unwanted": sides[0], "wanted": sides[1]})
    return sides_of(None)


def score_words(unwanted: str) -> tuple[str, str]:
    """(the expected-maximum measure, the any-sample probability) in the behaviour's words:
    toxicity's own names for toxicity."""
    if unwanted == "toxic":
        return "expected maximum toxicity", "toxicity probability"
    return f"expected maximum {unwanted} score", f"{unwanted} probability"


def measured_tasks(metrics: dict[str, Any]) -> list[str]:
    """The capability tasks every row has a result for, in the order the rows give them."""
    rows = metrics["methods"]
    keys = [k.removesuffix("_change_ci") for k in rows[0] if k.endswith("_change_ci")]
    return [t for t in keys if t in TASK_INFO and all(task_measure(t) in row for row in rows)]


def columns(metrics: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The comparison columns, then two per capability task the run measured (`--capability N
    --task T`): its accuracy or stereotype share, and that value's change."""
    extra: list[tuple[str, str]] = []
    for task in measured_tasks(metrics):
        label = TASK_INFO[task][0]
        extra += [(label, task_measure(task)), ("d" + label, f"{task}_change")]
    unwanted = side_words(metrics)[0]
    names = {"toxic_fraction": f"{unwanted} %",
             "toxicity_probability": "tox prob" if unwanted == "toxic" else f"P({unwanted})"}
    return tuple((names.get(key, label), key) for label, key in COLUMNS) + tuple(extra)


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
    elif key.endswith(("_accuracy", "_stereotype_share")):
        text = f"{100 * value:.1f}"
    elif key.endswith("_change") and f"{key}_ci" in row:
        lo, hi = row[f"{key}_ci"]
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
    "EMT = {emt}; degen = degenerate continuations; "
    "cont PPL = continuations' perplexity under the unmodified model."
)
CAPABILITY_LEGEND = (" {tasks} = lm-evaluation-harness accuracy (%) on that task's questions "
                     "(CrowS, SSet: the share of sentence pairs where the stereotypical one is "
                     "the likelier, 50 unbiased), d its change in points (~: its 95% interval "
                     "holds 0).")  # fmt: skip


def legend(metrics: dict[str, Any]) -> str:
    tasks = ", ".join(TASK_INFO[t][0] for t in measured_tasks(metrics))
    emt = score_words(side_words(metrics)[0])[0]
    return LEGEND.format(emt=emt) + (CAPABILITY_LEGEND.format(tasks=tasks) if tasks else "")


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
