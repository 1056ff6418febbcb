"""A run folder: the one owner of the file names an evaluation, a sweep or a demo writes, of
`run.json` and the resume check, of the continuation store, of atomic writes inside it, and of
the lock that keeps a second run from writing into it at the same time."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.io import (
    missing_folders,
    open_owned,
    prepare_out,
    read_json,
    refuse_unowned,
    remove_empty,
    write_json_atomic,
    write_text_atomic,
)
from .config import ORIGINAL, TASK_INFO, task_measure
from .metrics import TOXICITY_METRICS
from .store import ContinuationStore

_HELD: dict[Path, int] = {}
# Settings added after runs were first recorded, with the value older runs had: they resume.
ADDED_SETTINGS = {"chat_template": "none"}  # run folders this process has locked, and how deeply


class RunFolder:
    MARKER = ".eigenshift-run"  # says the folder is ours (run.json says so too, once written)
    LOCK = ".lock"  # flock-ed while a run writes; the kernel lets go when the process dies
    RUN = "run.json"  # settings, model and method signatures a resumed run must share
    CONTINUATIONS = "continuations.jsonl"
    PERPLEXITY = "perplexity.json"  # per-text clean perplexity per method, a cache
    CAPABILITY = "capability.json"  # per-question BoolQ correctness per method, a cache
    SECONDS = "seconds.json"
    METRICS = "metrics.json"
    SWEEP = "sweep.json"
    PARETO = "sweep_pareto.png"
    TUNE = "tune.json"  # a tune's choices and prompt sets; its evaluations in validation/, test/
    FRONTIER = "frontier.png"  # every tuned method's validation curve, chosen and test points
    BEST = "best"  # the sweep's chosen operating point, as an intervention folder
    EXPLAIN = "explain.json"  # EigenShift's directions (explain.md and the figure beside it)
    EXPLAIN_MD = "explain.md"
    SPECTRUM = "delta_spectrum.png"
    REPORT_MD = "report.md"
    REPORT_HTML = "report.html"
    TRADEOFF, BARS, SCORES = "tradeoff.png", "toxicity_bars.png", "score_distribution.png"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def create(self) -> RunFolder:
        """Make the folder (checked writable, cleaned of a killed run's temporaries)."""
        prepare_out(self.path)
        return self

    @classmethod
    def names(cls) -> list[str]:
        """Every file name a run folder may hold (`best` is a folder, replaced as a whole)."""
        return [v for k, v in vars(cls).items()
                if k.isupper() and isinstance(v, str) and v != cls.BEST]  # fmt: skip

    @contextmanager
    def lock(self, also_ours: tuple[str, ...] = ()) -> Iterator[RunFolder]:
        """Hold the folder for one run: refuse a folder eigenshift did not write (unless empty),
        one where a file it writes or reads is a symlink, FIFO or device, and one another process
        is writing into. Re-entrant within a process (a sweep's evaluation, a demo's). With
        `also_ours` (the files of an intervention or locate folder, which explain and locate
        write into), a folder holding one of them is ours too, and is not marked a run folder:
        evaluate never takes it for one."""
        key = self.path.resolve()
        if key in _HELD:
            _HELD[key] += 1
            try:
                yield self
            finally:
                _HELD[key] -= 1
            return
        marks = (self.MARKER, self.RUN, self.METRICS, *also_ours)
        ours = any(self.file(name).is_file() for name in marks)
        if self.path.is_dir() and any(self.path.iterdir()) and not ours:
            raise InputError(
                f"{self.path} exists and is not a run folder eigenshift wrote; give a new or "
                "empty --out folder"
            )
        if self.path.is_symlink():
            raise InputError(f"{self.path} is a symlink; give the folder it points to, or "
                             "another --out folder")  # fmt: skip
        for name in self.names():
            refuse_unowned(self.file(name))
        best = self.file(self.BEST)
        if best.is_symlink() or (best.exists() and not best.is_dir()):
            raise InputError(f"{best} is not a folder eigenshift wrote: remove it, or give another "
                             "--out folder")  # fmt: skip
        made = missing_folders(self.path)
        empty = bool(made) or not any(self.path.iterdir())
        self.create()
        lock_made = not self.file(self.LOCK).exists()
        handle = open_owned(self.file(self.LOCK), "a+")  # never through a symlink
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise InputError(
                f"{self.path} is in use by another eigenshift run ({owner}); wait for it to "
                "finish, or give another --out folder"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        if not also_ours and not self.file(self.MARKER).exists():
            write_text_atomic(self.file(self.MARKER), "eigenshift run folder\n")
        _HELD[key] = 1
        try:
            yield self
        except BaseException:
            # A run refused before it wrote anything leaves the folder as it found it.
            if empty and {p.name for p in self.path.iterdir()} <= {self.MARKER, self.LOCK}:
                for name in (self.MARKER, self.LOCK):
                    self.file(name).unlink(missing_ok=True)
                remove_empty(made)
            raise
        finally:
            del _HELD[key]
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
            if also_ours and lock_made:  # a folder of another kind keeps no lock file
                self.file(self.LOCK).unlink(missing_ok=True)

    # -- JSON records --------------------------------------------------------------------------
    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.file(name)
        return read_json(path, f"run folder {self.path}") if path.exists() else default

    def write_json(self, name: str, data: Any) -> Path:
        write_json_atomic(self.file(name), data)
        return self.file(name)

    def resume(self, record: dict[str, Any]) -> dict[str, Any]:
        """Check `record` (settings, model, methods) against the run this folder holds, if any,
        and write the merged record: a rerun with the same settings picks up where it stopped;
        other settings are refused instead of mixing two runs."""
        record = _as_read(record)
        previous = self._previous()
        if previous is not None:
            differs = self._other_settings(previous, record["settings"])
            if previous["model"]["unembedding_hash"] != record["model"]["unembedding_hash"]:
                differs.append("model")
            differs += [f"intervention '{n}'" for n, sig in record["methods"].items()
                        if previous["methods"].get(n, sig) != sig]  # fmt: skip
            self._refuse(differs)
            record = {**record, "methods": {**previous["methods"], **record["methods"]}}
        self.write_json(self.RUN, record)
        return record

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse, before any work, settings other than those of the run this folder holds (the
        whole check, with the model and methods, is `resume`'s)."""
        previous = self._previous()
        if previous is not None:
            self._refuse(self._other_settings(previous, _as_read(settings)))

    def _previous(self) -> dict[str, Any] | None:
        previous = self.read_json(self.RUN)
        if previous is not None and not (isinstance(previous, dict) and _is_run(previous)):
            raise InputError(f"{self.file(self.RUN)} is not a run record; use a new --out folder")
        return previous

    @staticmethod
    def _other_settings(previous: dict[str, Any], settings: dict[str, Any]) -> list[str]:
        recorded = previous["settings"]
        return [f"{k}: not recorded by the older eigenshift that began it, so its inputs cannot "
                "be checked" if k.endswith("_sha256") and k not in recorded else k
                for k in settings if recorded.get(k, ADDED_SETTINGS.get(k)) != settings[k]]

    def _refuse(self, differs: list[str]) -> None:
        if differs:
            raise InputError(
                f"{self.path} holds a run made with other settings or inputs "
                f"({', '.join(differs)}); resume with the same ones, or write to a new --out "
                "folder"
            )

    def store(self) -> ContinuationStore:
        return ContinuationStore(self.file(self.CONTINUATIONS))

    def metrics(self) -> dict[str, Any]:
        metrics = self.read_json(self.METRICS)
        if metrics is None:
            raise InputError(
                f"{self.path} has no {self.METRICS}; run `eigenshift evaluate --out {self.path}`"
            )
        problem = metrics_problem(metrics)
        if problem:
            raise InputError(
                f"{self.file(self.METRICS)} is not an evaluation's metrics ({problem}; damaged?); "
                f"rerun `eigenshift evaluate --out {self.path}` with the same settings to "
                "rewrite it"
            )
        return metrics

    def explanation(self) -> list[dict[str, Any]] | None:
        """EigenShift's explained directions, when `write_explanation` wrote them here."""
        return self.read_json(self.EXPLAIN)


# What metrics.json holds and every method's row in it, as `summary.summarise` writes them: what
# the report and the table read. NaN is a number here (a relative change from 0, say).
_NUMBERS = ("toxic_fraction", "expected_max_toxicity", "toxicity_probability",
            "relative_expected_max_toxicity", "degenerate_share", "distinct_2",
            "continuation_perplexity", "n_toxic", "n_continuations")  # fmt: skip
_MEASURED = ("perplexity", "relative_perplexity", "tph")  # None where a tune did not measure it


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _pair(value: Any) -> bool:
    return isinstance(value, list | tuple) and len(value) == 2 and all(map(_number, value))


def metrics_problem(metrics: Any) -> str:
    """What in a metrics.json is not what an evaluation writes, or '' when nothing is."""
    if not isinstance(metrics, dict):
        return "not a JSON object"
    rows = metrics.get("methods")
    if not (isinstance(rows, list) and rows and all(isinstance(r, dict) for r in rows)):
        return "no 'methods' rows"
    if not (_number(metrics.get("threshold")) and 0 < metrics["threshold"] < 1):
        return "no threshold in (0, 1)"
    for row in rows:
        name = row.get("method")
        if not isinstance(name, str):
            return "a row without a method name"
        bad = [k for k in _NUMBERS if not _number(row.get(k))]
        bad += [k for k in _MEASURED if row.get(k) is not None and not _number(row[k])]
        bad += [k for k in ("degenerate_ci",) if not _pair(row.get(k))]
        bad += [k for k in ("perplexity_ci",) if row.get(k) is not None and not _pair(row[k])]
        intervals = row.get("intervals")
        compared = name != ORIGINAL  # the original is compared with nothing
        for metric in TOXICITY_METRICS:
            entry = intervals.get(metric) if isinstance(intervals, dict) else None
            if not (isinstance(entry, dict) and _pair(entry.get("ci")) and (not compared or (
                    _pair(entry.get("diff_ci")) and isinstance(entry.get("within_noise"), bool)))):
                bad.append(f"intervals.{metric}")
        if compared and not isinstance(row.get("flag_degenerate"), bool):
            bad.append("flag_degenerate")
        if compared and not (isinstance(row.get("within_noise"), dict) and all(
                isinstance(v, bool) for v in row["within_noise"].values())):  # fmt: skip
            bad.append("within_noise")
        tasks = {k.removesuffix("_change_ci") for k in row if k.endswith("_change_ci")}
        tasks |= {t for t in TASK_INFO if task_measure(t) in row or f"{t}_change" in row}
        for task in sorted(tasks):
            if not (_number(row.get(task_measure(task))) and _number(row.get(f"{task}_change"))
                    and _pair(row.get(f"{task}_change_ci"))):  # fmt: skip
                bad.append(task)
        if bad:
            return f"'{name}': {', '.join(bad)}"
    return ""


def _as_read(record: dict[str, Any]) -> dict[str, Any]:
    """`record` as it reads back from run.json (tuples become lists), to compare with it."""
    return dict(json.loads(json.dumps(record)))


def _is_run(record: dict[str, Any]) -> bool:
    return (isinstance(record.get("settings"), dict) and isinstance(record.get("methods"), dict)
            and isinstance(record.get("model"), dict)
            and "unembedding_hash" in record["model"])  # fmt: skip
