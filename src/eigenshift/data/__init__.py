"""Data: prompts, labelled texts and clean text from files, HF datasets or the embedded defaults."""

from .clean import CleanTexts, load_clean_texts
from .io import content_hash, read_rows
from .labelled import LAYOUTS, LabelledTexts, load_labelled
from .prompts import Prompt, PromptSet, load_prompts
from .splits import split_indices, stratified_subsample

__all__ = [
    "LAYOUTS",
    "CleanTexts",
    "LabelledTexts",
    "Prompt",
    "PromptSet",
    "content_hash",
    "load_clean_texts",
    "load_labelled",
    "load_prompts",
    "read_rows",
    "split_indices",
    "stratified_subsample",
]
