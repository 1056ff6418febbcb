"""Files and folders we write and read: atomic writes (a crash leaves the previous version or the
new one, never a torn one), the one check of an output folder before work, the clean-up of what
a killed run left behind, and the one reader of JSON and JSONL that turns a malformed file into
one line naming the file and line; and the stopwatch whose stage times runs record."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from .errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp and mkdtemp create owner-only files; what we write gets the user's usual permissions.
FILE_MODE, FOLDER_MODE = 0o666 & ~_umask(), 0o777 & ~_umask()
# `.NAME.tmp-PID-XXXX` and `.NAME.old-PID-XXXX`: what an atomic write holds while it runs.
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[^/]*$")


def _prefix(name: str, kind: str = "tmp") -> str:
    return f".{name}.{kind}-{os.getpid()}-"


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_file(path.parent, path.name) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


def open_owned(path: Path, mode: str = "a") -> IO[str]:
    """`path` opened for appending ("a"), appending and reading ("a+") or writing afresh ("w"),
    created if missing, only if it is a regular file: a symlink is never followed (a run
    folder's `.lock` linked to a user's file would be truncated) and a FIFO or device never
    opened (it could block)."""
    flags = os.O_CREAT | os.O_NOFOLLOW | (os.O_RDWR if "+" in mode else os.O_WRONLY)
    flags |= os.O_TRUNC if mode == "w" else os.O_APPEND
    refuse_unowned(path)  # before open, which could block on a FIFO
    try:
        fd = os.open(path, flags | os.O_NONBLOCK, FILE_MODE)
    except OSError as exc:  # a symlink (ELOOP) or a FIFO (ENXIO) put there since the check
        if exc.errno in (errno.ELOOP, errno.ENXIO):
            raise _unowned(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _unowned(path)
    os.set_blocking(fd, True)
    return os.fdopen(fd, mode, encoding="utf-8")


def refuse_unowned(path: Path) -> None:
    """One line for a name in our folder that is a symlink, FIFO, device or folder: eigenshift
    reads and writes there only regular files it created."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise _unowned(path)


def refuse_special(path: Path, error: type[InputError] = InputError) -> None:
    """Refuse a FIFO, device or socket where eigenshift reads a file (opening one blocks, or
    reads forever), or inside a folder it reads (an artifact, a model, a scorer): one line
    instead of a hang. Symlinks are followed: a model's files often are links into a cache."""
    entries = [path]
    if path.is_dir():
        entries = sorted(path.iterdir())
    for entry in entries:
        if entry.exists() and not (entry.is_file() or entry.is_dir()):
            raise error(f"{entry} is not a regular file (a FIFO, device or socket), which "
                        "eigenshift does not read: give a file")  # fmt: skip


def _unowned(path: Path) -> InputError:
    kind = "a symlink" if path.is_symlink() else "not a regular file"
    return InputError(f"{path} is {kind}, and eigenshift writes only regular files it creates: "
                      "remove it, or give another folder")


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay out, save and close a matplotlib figure, atomically: savefig opens the path itself,
    so a symlink left at a figure's name would be written through."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with temporary_file(path.parent, path.name) as tmp:
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
            os.replace(tmp, path)
    finally:
        plt.close(fig)
    return path


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@contextmanager
def temporary_file(folder: Path, name: str) -> Iterator[Path]:
    """A path beside `folder / name` to write into and then `os.replace`; removed on failure,
    and named so that `clean_leftovers` removes it after a crash."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=_prefix(name))
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)  # set before the caller's os.replace moves it into place
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def clean_leftovers(folder: Path, name: str | None = None) -> None:
    """Remove the temporaries that runs killed mid-write left in `folder` (only ours, only those
    whose process is gone; with `name`, only those of that file or folder). An old copy whose
    target is missing (killed between the two renames of `atomic_folder`) is put back instead."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        match = _LEFTOVER.match(entry.name)
        if not match or (name is not None and match["name"] != name):
            continue
        if int(match["pid"]) == os.getpid() or _alive(int(match["pid"])):
            continue
        target, kept = folder / match["name"], entry / match["name"]
        if match["kind"] == "old" and not target.exists() and kept.exists():
            os.replace(kept, target)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def missing_folders(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first: what making it makes."""
    return [p for p in (path, *path.parents) if not p.exists()]


def remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (deepest first) that exist and are empty: a refused command leaves no
    folder it made."""
    for folder in folders:
        with suppress(OSError):
            folder.rmdir()


def check_writable(folder: Path, create: bool = True) -> None:
    """Prove a file can be written in `folder`, before any work; the folder is made (or, with
    `create=False`, made and removed again, so that a command refused later leaves nothing)."""
    made = missing_folders(folder)
    try:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with temporary_file(folder, "write-check"):
                pass
        finally:
            if not create:
                remove_empty(made)
    except OSError as exc:
        raise InputError(
            f"cannot write to {folder}: {exc.strerror or exc}; give an output folder you can "
            "write to"
        ) from None


def check_replaceable(target: Path, marker: str) -> None:
    """Refuse to replace an existing, non-empty folder that lacks our `marker` file."""
    if target.is_dir() and any(target.iterdir()) and not (target / marker).is_file():
        raise InputError(
            f"{target} exists and is not a folder eigenshift wrote (no {marker}); refusing to "
            "replace it: give a new or empty output folder"
        )


def prepare_out(target: Path, marker: str | None = None, create: bool = True) -> Path:
    """The one check of an output folder, made before any work: with `marker`, `target` will be
    replaced as a whole, so it must be new, empty or one of ours (holding `marker`) and its
    parent writable; without, files are written into `target`, which must be writable. What a
    killed earlier run left beside it is cleaned up. `create=False` checks and leaves no new
    folder behind (the command line's check, made before the command may be refused)."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise InputError(f"{target} is a file; give a folder to write into")
    if marker is not None:
        check_replaceable(target, marker)
        check_writable(target.parent, create)
        clean_leftovers(target.parent, target.name)
    else:
        check_writable(target, create)
        clean_leftovers(target)
    return target


@contextmanager
def atomic_folder(target: Path, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it takes `target`'s place in one
    rename (the old folder is moved aside first and removed after), so a crash leaves the old
    folder or the new one, never half of one; on failure the temporary folder is removed, and
    one a killed run left is removed by the next write of the same target.

    With `marker` (a file name our folders of this kind hold), an existing non-empty `target`
    without it is refused before anything is written: we replace only what we wrote."""
    if marker is not None:
        prepare_out(target, marker)
    else:
        clean_leftovers(target.parent, target.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=_prefix(target.name)))
    os.chmod(tmp, FOLDER_MODE)
    try:
        yield tmp
        _usual_modes(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=_prefix(target.name, "old")))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _usual_modes(folder: Path) -> None:
    """The user's usual permissions on what was written in `folder`: safetensors (and so
    save_pretrained) creates its files owner-only, unlike every other file we write."""
    for entry in folder.rglob("*"):
        if not entry.is_symlink():
            os.chmod(entry, FOLDER_MODE if entry.is_dir() else FILE_MODE)


def share_mode(path: Path) -> None:
    """`path` (a file a library created) with the user's usual permissions."""
    os.chmod(path, FILE_MODE)


# -- reading ------------------------------------------------------------------------------------
def read_text(path: Path, what: str = "") -> str:
    """A text file's content; a missing, unreadable or non-UTF-8 file is one InputError."""
    label = f"{what}: " if what else ""
    refuse_special(Path(path))
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(f"{label}{path}:{line}: not UTF-8 text (byte {exc.start}); give a "
                         "UTF-8 text file") from None  # fmt: skip
    except OSError as exc:
        raise InputError(f"{label}cannot read {path}: {exc.strerror or exc}") from None


def read_json(path: Path, what: str = "") -> Any:
    """A JSON file's content; malformed JSON is one InputError naming the file and line."""
    text = read_text(path, what)
    label = f"{what}: " if what else ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{label}{path}:{exc.lineno}: not valid JSON ({exc.msg}, column "
                         f"{exc.colno})") from None  # fmt: skip
    except RecursionError:
        raise too_deep(path, label) from None


def too_deep(path: Path, label: str, line: int | None = None) -> InputError:
    where = f"{path}:{line}" if line is not None else str(path)
    return InputError(f"{label}{where}: JSON nested too deeply to be anything eigenshift wrote "
                      "or reads")  # fmt: skip


def read_jsonl(
    path: Path, what: str = "", *, torn_tail: bool = False
) -> tuple[list[tuple[int, dict[str, Any]]], bool]:
    """(line number, record) of every non-blank line, and whether a torn last line was dropped.

    Every line must be a JSON object; the error names the file and line. With `torn_tail`, an
    unterminated last line that does not parse (what a crash mid-append leaves) is dropped
    instead: only the last line can be torn, so a bad line before it is still an error."""
    text = read_text(path, what)
    label = f"{what}: " if what else ""
    lines = text.split("\n")
    rows: list[tuple[int, dict[str, Any]]] = []
    torn = False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if torn_tail and number == len(lines):  # the last line, with no newline after it
                torn = True
                break
            raise InputError(f"{label}{path}:{number}: not valid JSON ({exc.msg}, column "
                             f"{exc.colno})") from None  # fmt: skip
        except RecursionError:
            raise too_deep(path, label, number) from None
        if not isinstance(row, dict):
            raise InputError(f"{label}{path}:{number}: each line must be a JSON object "
                             f"({{...}}), not {type(row).__name__}")  # fmt: skip
        rows.append((number, row))
    return rows, torn


class Stopwatch:
    """Seconds per named stage, for records of where a run's time went."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 2)
