"""What `explain` shows, free of torch (its command is generated from it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import check_settings, setting


@dataclass(frozen=True)
class ExplainConfig:
    model: str | None = setting(None, "Default: the model the artifact was fitted on.",
                                short="-m")  # fmt: skip
    top: int = setting(12, "Tokens listed per direction and side.", minimum=1)

    def __post_init__(self) -> None:
        check_settings(self)
