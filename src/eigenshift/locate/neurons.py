"""RQ1: per-neuron expert scores (AUROC, AP) and how unstable the expert sets are.

Activations are pooled per text inside the capture hooks, so memory is texts x neurons. Every
score, and every bootstrap resample of it, is one vectorised call over all neurons.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
import torch

from ..activations import collect_activations
from ..data import LabelledTexts
from ..errors import InputError
from ..io_utils import write_json_atomic
from ..models import LanguageModel
from .stats import auroc, expert_scores, length_bins, stratified_auroc

THRESHOLDS = (0.5, 0.51, 0.52, 0.55)
MIN_EXAMPLES = 8


@dataclass(frozen=True)
class NeuronConfig:
    sites: str | None = None  # fnmatch pattern over module names; default: every MLP site
    side: str = "input"  # the MLP hidden units are the input of the down projection
    pooling: str = "max"
    max_examples: int | None = 2000
    bootstrap: int = 20
    seed: int = 0
    batch_size: int = 16
    max_length: int = 128
    thresholds: tuple[float, ...] = THRESHOLDS
    length_bins: int = 0  # > 0: also score each neuron against texts of similar length only


def resolve_sites(lm: LanguageModel, pattern: str | None, side: str = "input") -> list[str]:
    """Module names to score: the MLP sites by default, else every module matching the pattern."""
    if pattern is None:
        names = lm.arch.mlp_site_names()
    else:
        names = [n for n, _ in lm.model.named_modules() if n and fnmatch.fnmatch(n, pattern)]
        if not names:
            raise InputError(
                f"site pattern '{pattern}' matches no module; e.g. "
                f"'{lm.arch.blocks}.*.{lm.arch.mlp_site}' (see `eigenshift info`)"
            )
    return [f"{n}:input" if side == "input" else n for n in names]


@dataclass
class NeuronScores:
    sites: list[str]
    widths: list[int]
    auroc: np.ndarray  # (neurons,) in site order
    ap: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    auroc_length_matched: np.ndarray | None = None

    def site_of(self, index: int) -> tuple[str, int]:
        bounds = np.cumsum(self.widths)
        s = int(np.searchsorted(bounds, index, side="right"))
        return self.sites[s], int(index - (bounds[s - 1] if s else 0))

    def save(self, out: str | Path) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {"auroc": self.auroc, "ap": self.ap}
        if self.auroc_length_matched is not None:
            tensors["auroc_length_matched"] = self.auroc_length_matched
        safetensors.numpy.save_file({k: v.astype(np.float64) for k, v in tensors.items()},
                                    out / "neurons.safetensors")  # fmt: skip
        write_json_atomic(out / "neurons.json", {"sites": self.sites, "widths": self.widths,
                                                  **self.meta})  # fmt: skip
        return out

    @classmethod
    def load(cls, folder: str | Path) -> NeuronScores:
        folder = Path(folder)
        if not (folder / "neurons.json").is_file():
            raise InputError(f"{folder} holds no neurons.json; run `eigenshift locate neurons`")
        meta = json.loads((folder / "neurons.json").read_text())
        tensors = safetensors.numpy.load_file(folder / "neurons.safetensors")
        sites, widths = meta.pop("sites"), meta.pop("widths")
        return cls(sites, widths, tensors["auroc"], tensors["ap"], meta,
                   tensors.get("auroc_length_matched"))  # fmt: skip


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def token_lengths(lm: LanguageModel, texts: list[str], max_length: int) -> np.ndarray:
    """Tokens per text as the model sees it (truncated): the confound that max-pooling rewards."""
    ids = lm.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    return np.array([len(i) for i in ids], dtype=np.float64)


def provenance(
    lm: LanguageModel, data: LabelledTexts, config: Any, lengths: np.ndarray
) -> dict[str, Any]:
    """What a locate result was computed on, and the bar text length alone sets on its labels."""
    return {
        "model": lm.name,
        "data": data.source,
        "data_hash": data.hash(),
        "n_texts": len(data),
        "n_toxic": data.n_toxic,
        "config": asdict(config),
        "length_auroc": float(auroc(lengths, data.labels)[0]),
    }


def activation_matrix(
    lm: LanguageModel, data: LabelledTexts, sites: list[str], config: NeuronConfig, progress: bool
) -> tuple[np.ndarray, list[int]]:
    acts = collect_activations(lm, data.texts, sites, pooling=config.pooling,
                               batch_size=config.batch_size, max_length=config.max_length,
                               progress=progress)  # fmt: skip
    widths = [int(acts[s].shape[1]) for s in sites]
    return torch.cat([acts[s] for s in sites], dim=1).numpy(), widths  # float32: sorts fastest


def locate_neurons(
    lm: LanguageModel,
    data: LabelledTexts,
    config: NeuronConfig | None = None,
    *,
    data2: LabelledTexts | None = None,
    progress: bool = True,
) -> NeuronScores:
    """Scores on `data`; stability over bootstrap resamples, and against `data2` when given."""
    config = config or NeuronConfig()
    data.require("neuron scoring", total=MIN_EXAMPLES)
    sites = resolve_sites(lm, config.sites, config.side)
    x, widths = activation_matrix(lm, data, sites, config, progress)
    y = data.labels
    scores, ap = expert_scores(x, y)
    rng = np.random.default_rng(config.seed)
    boot = []
    for _ in range(config.bootstrap):
        idx = rng.integers(0, len(y), len(y))
        while y[idx].min() == y[idx].max():  # a resample needs both classes
            idx = rng.integers(0, len(y), len(y))
        boot.append(auroc(x[idx], y[idx]))
    stability: dict[str, Any] = {}
    for t in config.thresholds:
        full = scores > t
        jac = [jaccard(full, b > t) for b in boot]
        stability[str(t)] = {
            "share_above": float(full.mean()),
            "experts": int(full.sum()),
            "bootstrap_jaccard_mean": float(np.mean(jac)) if jac else None,
            "bootstrap_jaccard_min": float(np.min(jac)) if jac else None,
        }
    spread = np.std(np.stack(boot), axis=0) if boot else np.zeros_like(scores)
    lengths = token_lengths(lm, data.texts, config.max_length)
    meta: dict[str, Any] = {
        **provenance(lm, data, config, lengths),
        "thresholds": stability,
        "auroc_spread_mean": float(spread.mean()),
        "max_auroc": float(scores.max()),
        "mean_auroc": float(scores.mean()),
    }
    matched = None
    if config.length_bins:
        matched = stratified_auroc(x, y, length_bins(lengths, config.length_bins))
        meta["length_matched"] = {
            "bins": config.length_bins,
            "share_above": {str(t): float((matched > t).mean()) for t in config.thresholds},
            "max_auroc": float(matched.max()),
            "mean_auroc": float(matched.mean()),
            "correlation_with_auroc": float(np.corrcoef(scores, matched)[0, 1]),
        }
    if data2 is not None:
        x2, _ = activation_matrix(lm, data2, sites, config, progress)
        scores2 = auroc(x2, data2.labels)
        meta["data2"] = {
            "source": data2.source,
            "n_texts": len(data2),
            "auroc_correlation": float(np.corrcoef(scores, scores2)[0, 1]),
            "jaccard": {str(t): jaccard(scores > t, scores2 > t) for t in config.thresholds},
        }
    return NeuronScores(sites, widths, scores, ap, meta, matched)
