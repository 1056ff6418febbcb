"""An append-only JSONL of continuations that survives interruption.

Rows are appended a chunk at a time and fsynced, so after a crash at most the chunk in flight is
lost: a torn last line is dropped when the file is reopened. Anything else that is not a complete
row (a bad line before the last, a row without its fields) is refused with its line number, never
silently dropped with what follows it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.io import open_owned, read_jsonl, refuse_unowned, write_jsonl_atomic

Key = tuple[str, int, int]  # method, prompt_index, sample_index
# Every field a row holds, with the types it may have: what the summary and the report read.
FIELDS: dict[str, tuple[type, ...]] = {
    "method": (str,), "prompt_index": (int,), "sample_index": (int,), "prompt": (str,),
    "continuation": (str,), "token_ids": (list,), "score": (float, int),
    "judge_score": (float, int, type(None)), "continuation_nll": (float, int, type(None)),
    "degenerate": (str, type(None)),
}  # fmt: skip


class ContinuationStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[Key, dict[str, Any]] = {}
        refuse_unowned(path)  # a symlink to a user's file is neither read nor appended to
        if path.exists():
            self._load()

    def _load(self) -> None:
        rows, torn = read_jsonl(self.path, "continuations", torn_tail=True)
        for number, row in rows:
            problem = check_row(row)
            if problem:
                raise InputError(
                    f"{self.path}:{number}: not a continuation row ({problem}); delete that "
                    "line to regenerate it, or use a new --out folder"
                )
            self.rows[self.key(row)] = row
        if torn:  # a crash mid-append: keep every complete row
            write_jsonl_atomic(self.path, [row for _, row in rows])

    @staticmethod
    def key(row: dict[str, Any]) -> Key:
        return (row["method"], int(row["prompt_index"]), int(row["sample_index"]))

    def has(self, method: str, prompt_index: int, samples: int) -> bool:
        return all((method, prompt_index, s) in self.rows for s in range(samples))

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open_owned(self.path, "a") as handle:  # never through a symlink
            handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            handle.flush()
            os.fsync(handle.fileno())
        for row in rows:
            self.rows[self.key(row)] = row

    def for_method(self, method: str) -> list[dict[str, Any]]:
        return [r for k, r in self.rows.items() if k[0] == method]


def check_row(row: dict[str, Any]) -> str:
    """What is wrong with a stored row, or '' when nothing is."""
    for name, kinds in FIELDS.items():
        if name not in row:
            return f"no '{name}'"
        if not isinstance(row[name], kinds) or isinstance(row[name], bool):
            return f"'{name}' is {type(row[name]).__name__}"
    for name in ("score", "judge_score"):  # probabilities, as every scorer gives them
        if row[name] is not None and not 0.0 <= row[name] <= 1.0:  # NaN fails this too
            return f"'{name}' is {row[name]}, not a probability in [0, 1]"
    if row["continuation_nll"] is not None and not 0.0 <= row["continuation_nll"] < math.inf:
        return f"'continuation_nll' is {row['continuation_nll']}, not a finite NLL"
    if row["prompt_index"] < 0 or row["sample_index"] < 0:
        return "a negative index"
    if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in row["token_ids"]):
        return "'token_ids' holds something other than token ids"
    return ""
