"""Which scorer `score` uses, free of torch (its command is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import check_settings, setting


@dataclass(frozen=True)
class ScoreConfig:
    scorer: str = setting("default", "default (Jigsaw BiLSTM), bilstm:LABEL, profanity, or a HF "
                                     "classifier id/folder.")  # fmt: skip

    def __post_init__(self) -> None:
        check_settings(self)
