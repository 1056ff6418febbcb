"""Labelled toxic / non-toxic texts: generic CSV/JSONL with named columns, and the Jigsaw, ToxiCN
and insults layouts; `default` is the insults data shipped in the `insults` package."""

from __future__ import annotations

import codecs
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..core.assets import asset_file
from ..core.errors import DataError
from ..core.settings import check_settings, setting
from .io import Rows, cell, content_hash, pick_column, read_rows, text_cell
from .splits import stratified_subsample

Layout = Literal["jigsaw", "civil_comments", "toxicn", "insults"]
LAYOUTS: dict[str, tuple[str, str]] = {
    "jigsaw": ("comment_text", "toxic"),
    "civil_comments": ("text", "toxicity"),
    "toxicn": ("content", "toxic"),
    "insults": ("Comment", "Insult"),
}
TEXT_COLUMNS = ("text", "comment_text", "content", "Comment", "sentence", "comment")
LABEL_COLUMNS = ("label", "toxic", "toxicity", "Insult", "labels", "is_toxic")
MIN_PER_CLASS = 2
_TRUE = {"1", "true", "yes", "toxic", "t", "y"}
_FALSE = {"0", "false", "no", "non-toxic", "nontoxic", "clean", "f", "n"}


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: np.ndarray  # int64, 1 = toxic
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_toxic(self) -> int:
        return int(self.labels.sum())

    def hash(self) -> str:
        return content_hash(self.texts, self.labels.tolist())

    def require(self, purpose: str, *, total: int = 0, per_class: int = 0) -> None:
        """Refuse data too small for `purpose`, saying what it has and what it needs."""
        if len(self) < total:
            raise DataError(f"{purpose} needs at least {total} labelled texts, got {len(self)}")
        clean = len(self) - self.n_toxic
        if min(self.n_toxic, clean) < per_class:
            raise DataError(f"{purpose} needs at least {per_class} toxic and {per_class} "
                            f"non-toxic texts; got {self.n_toxic} and {clean}")  # fmt: skip

    def subset(self, indices: np.ndarray) -> LabelledTexts:
        return LabelledTexts([self.texts[i] for i in indices], self.labels[indices], self.source)


def _label(value: object, threshold: float, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    try:
        number = float(value) if isinstance(value, int | float) else float(text)
    except ValueError:
        raise DataError(f"{where}: label '{value}' is neither a number nor true/false") from None
    if not math.isfinite(number):
        raise DataError(f"{where}: label '{value}' is not a finite number; fix or drop that row")
    return int(number >= threshold)


def _insult_text(raw: str) -> str:
    """The insults data stores comments quoted and escaped, some of them several times (UTF-8 bytes
    written as escaped Latin-1): unescape until no escapes remain, then undo the Latin-1."""
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    for _ in range(4):  # some comments are escaped three times over
        if "\\" not in text:
            break
        try:
            text = codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape")
        except UnicodeDecodeError:
            break
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def _default_rows() -> tuple[Rows, str]:
    parts = [read_rows(str(asset_file("insults", f"data/Inputs/{name}")), "labelled data")[0]
             for name in ("train.csv", "test_with_solutions.csv")]  # fmt: skip
    rows = Rows([r for part in parts for r in part], "insults",
                [n for part in parts for n in part.lines], unit="row")  # fmt: skip
    return rows, "insults (Kaggle Detecting Insults, train + test_with_solutions)"


def load_labelled(
    spec: str = "default",
    *,
    text_column: str | None = None,
    label_column: str | None = None,
    layout: str | None = None,
    threshold: float = 0.5,
    max_examples: int | None = None,
    seed: int = 0,
) -> LabelledTexts:
    """Load (text, label) pairs; labels are 0/1, bool, yes/no or scores cut at `threshold`."""
    what = "labelled data"
    rows, source = _default_rows() if spec == "default" else read_rows(spec, what)
    if spec == "default":
        layout = layout or "insults"
    if not rows:
        raise DataError(f"{what}: {source} holds no rows")
    if layout is not None:
        if layout not in LAYOUTS:
            raise DataError(f"{what}: unknown layout '{layout}'; known: {', '.join(LAYOUTS)}")
        text_column = text_column or LAYOUTS[layout][0]
        label_column = label_column or LAYOUTS[layout][1]
    tcol = pick_column(rows, TEXT_COLUMNS, text_column, f"{what} ({source}) text")
    lcol = pick_column(rows, LABEL_COLUMNS, label_column, f"{what} ({source}) label")
    if layout is None and tcol == "Comment" and lcol == "Insult":
        layout = "insults"
    texts, labels = [], []
    for n in range(len(rows)):
        text, value = text_cell(rows, n, tcol, what), cell(rows, n, lcol, what)
        if text is None or value in (None, ""):
            continue
        text = _insult_text(text) if layout == "insults" else text
        if text.strip():
            texts.append(text)
            labels.append(_label(value, threshold, f"{what}: {rows.where(n)}"))
    data = LabelledTexts(texts, np.asarray(labels, dtype=np.int64), source)
    if len(data) == 0:
        raise DataError(f"{what}: {source} has no rows with both a text and a label")
    if max_examples is not None:
        data = data.subset(stratified_subsample(data.labels, max_examples, seed))
    counts = np.bincount(data.labels, minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise DataError(
            f"{what}: {source} needs at least {MIN_PER_CLASS} toxic and {MIN_PER_CLASS} non-toxic "
            f"texts, it has {counts[1]} toxic and {counts[0]} non-toxic; check the label column "
            f"('{lcol}') and threshold ({threshold})"
        )
    return data


@dataclass(frozen=True)
class LabelledSource:
    """Which labelled texts to read and how much of them: what `--data` and its friends set."""

    data: str = setting("default", "Labelled texts: CSV/JSONL/HF id; default: the insults data.")
    text_column: str | None = setting(None, "Column holding the text.")
    label_column: str | None = setting(None, "Column holding the label.")
    layout: Layout | None = setting(None, "A known layout (its text and label columns).")
    max_examples: int | None = setting(2000, "A stratified, seeded subsample of this size.",
                                       minimum=1)  # fmt: skip
    seed: int = setting(0, "Seed of the subsample (and of the study's resamples).", minimum=0)

    def __post_init__(self) -> None:
        check_settings(self)

    def load(self, spec: str | None = None) -> LabelledTexts:
        """These texts (or, with `spec`, another source read the same way)."""
        return load_labelled(spec or self.data, text_column=self.text_column,
                             label_column=self.label_column, layout=self.layout,
                             max_examples=self.max_examples, seed=self.seed)  # fmt: skip
