"""A run folder: the one owner of the file names an evaluation, a sweep or a demo writes, of
`run.json` and the resume check, of the continuation store, and of atomic writes inside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io_utils import write_json_atomic
from .store import ContinuationStore


class RunFolder:
    RUN = "run.json"  # settings, model and method signatures a resumed run must share
    CONTINUATIONS = "continuations.jsonl"
    PERPLEXITY = "perplexity.json"  # per-text clean perplexity per method, a cache
    SECONDS = "seconds.json"
    METRICS = "metrics.json"
    SWEEP = "sweep.json"
    PARETO = "sweep_pareto.png"
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
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    # -- JSON records --------------------------------------------------------------------------
    def read_json(self, name: str, default: Any = None) -> Any:
        path = self.file(name)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else default

    def write_json(self, name: str, data: Any) -> Path:
        write_json_atomic(self.file(name), data)
        return self.file(name)

    def resume(self, record: dict[str, Any]) -> dict[str, Any]:
        """Check `record` (settings, model, methods) against the run this folder holds, if any,
        and write the merged record: a rerun with the same settings picks up where it stopped;
        other settings are refused instead of mixing two runs."""
        previous = self.read_json(self.RUN)
        if previous is not None:
            differs = [k for k in record["settings"]
                       if previous["settings"].get(k) != record["settings"][k]]  # fmt: skip
            if previous["model"]["unembedding_hash"] != record["model"]["unembedding_hash"]:
                differs.append("model")
            differs += [f"intervention '{n}'" for n, sig in record["methods"].items()
                        if previous["methods"].get(n, sig) != sig]  # fmt: skip
            if differs:
                raise InputError(
                    f"{self.path} holds a run made with other settings ({', '.join(differs)}); "
                    "resume with the same settings, or write to a new --out folder"
                )
            record = {**record, "methods": {**previous["methods"], **record["methods"]}}
        self.write_json(self.RUN, record)
        return record

    def store(self) -> ContinuationStore:
        return ContinuationStore(self.file(self.CONTINUATIONS))

    def metrics(self) -> dict[str, Any]:
        metrics = self.read_json(self.METRICS)
        if metrics is None:
            raise InputError(
                f"{self.path} has no {self.METRICS}; run `eigenshift evaluate --out {self.path}`"
            )
        return metrics

    def explanation(self) -> list[dict[str, Any]] | None:
        """EigenShift's explained directions, when `write_explanation` wrote them here."""
        return self.read_json(self.EXPLAIN)
