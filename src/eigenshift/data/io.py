"""Reading rows from CSV, JSONL, JSON, plain text or a Hugging Face dataset id."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..core.errors import DataError, InputError
from ..core.io import read_json, read_jsonl, read_text, refuse_special

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.\[\]%:-]+)?$")
Row = dict[str, Any]


class Rows(list[Row]):
    """Rows, each with where it came from ("file:line"), for errors that point at the line."""

    def __init__(self, rows: Iterable[Row], origin: str, lines: Sequence[int] | None = None,
                 unit: str = "line") -> None:  # fmt: skip
        super().__init__(rows)
        self.origin, self.unit = origin, unit
        self.lines = list(lines) if lines is not None else list(range(1, len(self) + 1))

    def where(self, index: int) -> str:
        if self.unit == "line":
            return f"{self.origin}:{self.lines[index]}"
        return f"{self.origin} {self.unit} {self.lines[index]}"


def read_rows(spec: str, what: str) -> tuple[Rows, str]:
    """Rows of a local file or an HF dataset (`org/name[:split]`), and a name for the source."""
    path = Path(spec).expanduser()
    if path.is_file():
        return _read_file(path, what), str(path)
    if path.is_dir():
        raise DataError(f"{what}: {path} is a folder; give a .csv, .jsonl, .json or .txt file")
    refuse_special(path, DataError)  # a FIFO: no hub dataset id, and no file to wait on
    if spec.startswith((".", "/", "~")) or not _HUB_ID.match(spec.removeprefix("hf:")):
        raise DataError(
            f"{what}: file not found: {spec} (give a .csv/.jsonl/.json/.txt file, a Hugging Face "
            "dataset id such as org/name[:split], or 'default')"
        )
    return Rows(_read_hub(spec.removeprefix("hf:"), what), spec, unit="row"), spec


def _read_file(path: Path, what: str) -> Rows:
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            csv.field_size_limit(sys.maxsize)
            with io.StringIO(read_text(path, what).removeprefix("\ufeff"), newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                rows, lines = [], []
                try:
                    for row in reader:
                        rows.append(row)
                        lines.append(reader.line_num)
                    return Rows(rows, str(path), lines)
                except csv.Error as exc:
                    raise DataError(f"{what}: {path}:{reader.line_num}: {exc}") from None
        if suffix in (".jsonl", ".ndjson"):
            numbered, _ = read_jsonl(path, what)
            return Rows((row for _, row in numbered), str(path), [n for n, _ in numbered])
        if suffix == ".json":
            data = read_json(path, what)
            if isinstance(data, dict):  # {"data": [...]} or column-oriented {"text": [...]}
                lists = [v for v in data.values() if isinstance(v, list)]
                if len(lists) == 1 and all(isinstance(r, dict) for r in lists[0]):
                    return Rows(lists[0], str(path), unit="record")
                if lists and all(isinstance(v, list) for v in data.values()):
                    columns = zip(*data.values(), strict=True)
                    records = [dict(zip(data, vals, strict=True)) for vals in columns]
                    return Rows(records, str(path), unit="record")
            if isinstance(data, list):
                records = [r if isinstance(r, dict) else {"text": r} for r in data]
                return Rows(records, str(path), unit="record")
            raise DataError(f"{what}: {path} is JSON but not a list of records")
        if suffix in (".txt", ".text", ""):
            texts = [(n, line) for n, line in enumerate(read_text(path, what).splitlines(), 1)
                     if line.strip()]  # fmt: skip
            return Rows(({"text": line} for _, line in texts), str(path),
                        [n for n, _ in texts])  # fmt: skip
    except DataError:
        raise
    except InputError as exc:  # from the shared readers: already names the file and line
        raise DataError(str(exc)) from None
    except (csv.Error, ValueError) as exc:
        raise DataError(f"{what}: cannot parse {path}: {exc}") from exc
    raise DataError(f"{what}: unsupported file type '{suffix}' ({path}); use .csv, .jsonl or .txt")


def _read_hub(spec: str, what: str) -> list[Row]:
    name, _, split = spec.partition(":")
    try:
        import datasets

        data = datasets.load_dataset(name, split=split or "train")
    except Exception as exc:  # datasets raises many types when offline or for a bad id
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{what}: could not load Hugging Face dataset '{spec}': {first}. Without network, "
            "give a local file"
        ) from exc
    return [dict(r) for r in data]


def pick_column(
    rows: Sequence[Row], candidates: Iterable[str], given: str | None, what: str
) -> str:
    """The given column, or the first candidate present; a clear error naming what exists."""
    columns = list(rows[0].keys()) if rows else []
    if given is not None:
        if given not in columns:
            raise DataError(f"{what}: no column '{given}'; the columns are: {', '.join(columns)}")
        return given
    for name in candidates:
        if name in columns:
            return name
    raise DataError(
        f"{what}: none of the columns {', '.join(candidates)} found "
        f"(columns: {', '.join(columns)}); name the column explicitly"
    )


def cell(rows: Rows, index: int, column: str, what: str) -> Any:
    """Row `index`'s value in `column`; a row without the column (a JSONL mixing 'text' and
    'prompt' keys, say) is refused with its line, never dropped."""
    if column not in rows[index]:
        raise DataError(f"{what}: {rows.where(index)}: no '{column}', which the other rows have: "
                        "give every row the same columns")  # fmt: skip
    return rows[index][column]


_UNSET: Any = object()


def text_cell(
    rows: Rows, index: int, column: str, what: str, value: Any = _UNSET
) -> str | None:  # fmt: skip
    """Row `index`'s text in `column` (or `value`, taken from it), None when empty; a value
    that is not text (a list, a number) is refused with its line, never turned into text."""
    value = cell(rows, index, column, what) if value is _UNSET else value
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{what}: {rows.where(index)}: '{column}' is a {type(value).__name__}, "
                        "not text")  # fmt: skip
    return value if value.strip() else None


def content_hash(*parts: Iterable[object]) -> str:
    """sha256 of the data itself (not the path), recorded in artifacts."""
    digest = hashlib.sha256()
    for part in parts:
        for item in part:
            digest.update(str(item).encode("utf-8"))
            digest.update(b"\x00")
        digest.update(b"\x01")
    return digest.hexdigest()
