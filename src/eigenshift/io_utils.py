"""Atomic writes of files and folders: a crash leaves the previous one or the new one, never a
torn one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import InputError


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def check_replaceable(target: Path, marker: str) -> None:
    """Refuse to replace an existing, non-empty folder that lacks our `marker` file (call it
    before long work, so a refusal costs nothing)."""
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} is a file; give a folder to write into")
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise InputError(
            f"{target} exists and is not a folder eigenshift wrote (no {marker}); refusing to "
            "replace it: give a new or empty output folder"
        )


@contextmanager
def atomic_folder(target: Path, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it takes `target`'s place in one
    rename (the old folder is moved aside first and removed after), so a crash leaves the old
    folder or the new one, never half of one; on failure the temporary folder is removed.

    With `marker` (a file name our folders of this kind hold), an existing non-empty `target`
    without it is refused before anything is written: we replace only what we wrote."""
    if marker is not None:
        check_replaceable(target, marker)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
