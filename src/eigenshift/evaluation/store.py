"""An append-only JSONL of continuations that survives interruption.

Rows are appended a chunk at a time and fsynced, so after a crash at most the chunk in flight is
lost; a torn last line is dropped when the file is reopened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..io_utils import write_jsonl_atomic

Key = tuple[str, int, int]  # method, prompt_index, sample_index


class ContinuationStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[Key, dict[str, Any]] = {}
        if path.exists():
            self._load()

    def _load(self) -> None:
        lines = self.path.read_text(encoding="utf-8").splitlines()
        good, torn = [], False
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                torn = True  # only a crash mid-write leaves one; everything after it is suspect
                break
            good.append(row)
            self.rows[self.key(row)] = row
        if torn:
            write_jsonl_atomic(self.path, good)

    @staticmethod
    def key(row: dict[str, Any]) -> Key:
        return (row["method"], int(row["prompt_index"]), int(row["sample_index"]))

    def has(self, method: str, prompt_index: int, samples: int) -> bool:
        return all((method, prompt_index, s) in self.rows for s in range(samples))

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            handle.flush()
            os.fsync(handle.fileno())
        for row in rows:
            self.rows[self.key(row)] = row

    def for_method(self, method: str) -> list[dict[str, Any]]:
        return [r for k, r in self.rows.items() if k[0] == method]
