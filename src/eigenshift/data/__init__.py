"""Data: prompts, labelled texts and clean text from files, HF datasets or the embedded defaults."""

from .clean import CleanTexts, load_clean_texts
from .io import content_hash, read_rows
from .labelled import LAYOUTS, LabelledSource, LabelledTexts, load_labelled
from .prompts import Prompt, PromptSet, load_prompts
from .splits import stratified_subsample

__all__ = [
    "LAYOUTS",
    "CleanTexts",
    "LabelledSource",
    "LabelledTexts",
    "Prompt",
    "PromptSet",
    "content_hash",
    "load_clean_texts",
    "load_labelled",
    "load_prompts",
    "read_rows",
    "stratified_subsample",
]
