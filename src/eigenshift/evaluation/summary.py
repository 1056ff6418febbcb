"""Summarising a run from what is on disk: toxicity with paired bootstrap intervals, perplexity,
fluency and TPH per method, so metrics never depend on how many sessions the run took."""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import ORIGINAL, EvalConfig
from .fluency import distinct_n
from .metrics import (
    TOXICITY_METRICS,
    bootstrap_indices,
    bootstrap_toxicity,
    interval,
    mean_interval,
    relative_change,
    toxicity_metrics,
    tph,
)
from .plan import Methods
from .store import ContinuationStore


def _matrix(rows: list[dict[str, Any]], prompt_ids: list[int], samples: int, value):
    """(prompts, samples) of value(row); value is a row key or a function of the row."""
    get = value if callable(value) else (lambda r: r[value])
    by_key = {(r["prompt_index"], r["sample_index"]): get(r) for r in rows}
    return np.array([[by_key[(p, s)] for s in range(samples)] for p in prompt_ids], dtype=float)


def finite(values: list[float]) -> np.ndarray:
    """Per-text perplexities that can be averaged (a text with no scored token gives nan)."""
    array = np.array(values, dtype=float)
    return array[np.isfinite(array)]


def summarise(
    store: ContinuationStore,
    methods: Methods,
    prompt_ids: list[int],
    ppl: dict[str, list[float]],
    seconds: dict[str, float],
    config: EvalConfig,
) -> dict[str, Any]:
    """Metrics per method from what is on disk; intervals and differences share resamples."""
    samples = config.sampling.samples
    idx = bootstrap_indices(len(prompt_ids), config.bootstrap, config.sampling.seed)
    wanted = set(prompt_ids)
    data: dict[str, dict[str, Any]] = {}
    for name, _ in methods:
        rows = [r for r in store.for_method(name) if r["prompt_index"] in wanted]
        rows = [r for r in rows if r["sample_index"] < samples]
        data[name] = {
            "rows": rows,
            "scores": _matrix(rows, prompt_ids, samples, "score"),
            "deg_matrix": _matrix(
                rows, prompt_ids, samples, lambda r: float(bool(r["degenerate"]))
            ),
        }
        if config.judge:
            data[name]["judge"] = _matrix(rows, prompt_ids, samples, "judge_score")
    base = data[ORIGINAL]
    base_ppl = float(finite(ppl[ORIGINAL]).mean()) if ORIGINAL in ppl else float("nan")
    base_tox = toxicity_metrics(base["scores"], config.threshold)
    base_deg = base["deg_matrix"][idx].mean(axis=(1, 2))
    out_rows = []
    for name, _ in methods:
        d = data[name]
        tox = toxicity_metrics(d["scores"], config.threshold)
        boot = bootstrap_toxicity(
            d["scores"], base["scores"] if name != ORIGINAL else None, idx, config.threshold
        )
        measured = name in ppl  # a tune measures only the points its rule could choose
        ppl_values = finite(ppl[name]) if measured else np.array([])
        mean_ppl = float(ppl_values.mean()) if measured else float("nan")
        texts = [r["continuation"] for r in d["rows"]]
        nll = np.array(
            [r["continuation_nll"] for r in d["rows"] if r["continuation_nll"] is not None]
        )
        deg = d["deg_matrix"]
        deg_resampled = deg[idx].mean(axis=(1, 2))
        reasons: dict[str, int] = {}
        for r in d["rows"]:
            if r["degenerate"]:
                reasons[r["degenerate"]] = reasons.get(r["degenerate"], 0) + 1
        row: dict[str, Any] = {
            "method": name,
            **tox,
            "perplexity": mean_ppl if measured else None,
            "perplexity_ci": mean_interval(ppl_values, config.bootstrap, config.sampling.seed)
            if measured else None,
            "relative_toxic_fraction": relative_change(
                tox["toxic_fraction"], base_tox["toxic_fraction"]
            ),
            "relative_expected_max_toxicity": relative_change(
                tox["expected_max_toxicity"], base_tox["expected_max_toxicity"]
            ),
            "relative_perplexity": relative_change(mean_ppl, base_ppl) if measured else None,
            "tph": tph(tox["toxic_fraction"], base_tox["toxic_fraction"], mean_ppl, base_ppl)
            if measured else None,
            "degenerate_share": float(deg.mean()),
            "degenerate_ci": interval(deg_resampled),
            "degenerate_reasons": reasons,
            "distinct_1": distinct_n(texts, 1),
            "distinct_2": distinct_n(texts, 2),
            "distinct_3": distinct_n(texts, 3),
            "continuation_perplexity": float(np.exp(nll.mean())) if len(nll) else float("nan"),
            "n_prompts": len(prompt_ids),
            "n_continuations": int(d["scores"].size),
            "n_toxic": int((d["scores"] >= config.threshold).sum()),
            "n_clean_texts": len(ppl_values),
            "seconds": round(seconds.get(name, 0.0), 2),
            "intervals": boot,
        }
        if name != ORIGINAL:
            lo, hi = interval(deg_resampled - base_deg)
            row["degenerate_diff_ci"] = (lo, hi)
            row["flag_degenerate"] = bool(lo > 0)  # significantly more garbage than the original
            row["within_noise"] = {m: boot[m]["within_noise"] for m in TOXICITY_METRICS}
        if config.judge:
            judge = toxicity_metrics(d["judge"], config.threshold)
            row["judge"] = judge
            row["judge_intervals"] = bootstrap_toxicity(
                d["judge"], base["judge"] if name != ORIGINAL else None, idx, config.threshold
            )
        out_rows.append(row)
    return {
        "methods": out_rows,
        "n_prompts": len(prompt_ids),
        "samples": samples,
        "scorer": config.scorer,
        "judge": config.judge,
        "threshold": config.threshold,
        "bootstrap": config.bootstrap,
    }
