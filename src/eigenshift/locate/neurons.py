"""RQ1: per-neuron expert scores (AUROC, AP) and how unstable the expert sets are.

Activations are pooled per text inside the capture hooks, so memory is texts x neurons. Every
score, and every bootstrap resample of it, is one vectorised call over all neurons.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy
import torch
from safetensors import SafetensorError

from ..capture.activations import collect_activations
from ..core.errors import InputError
from ..core.io import (
    read_json,
    refuse_special,
    share_mode,
    temporary_file,
    write_json_atomic,
)
from ..data import LabelledSource, LabelledTexts
from ..models import LanguageModel, resolve_sites
from .configs import NEURON_RECORD, NEURON_TENSORS, NeuronConfig
from .stats import auroc, expert_scores, length_bins, stratified_auroc

TENSORS_FILE, META_FILE = NEURON_TENSORS, NEURON_RECORD
log = logging.getLogger(__name__)
MIN_EXAMPLES = 8


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
        """Write the scores atomically, beside whatever else the folder holds (the report)."""
        out = Path(out)
        tensors = {"auroc": self.auroc, "ap": self.ap}
        if self.auroc_length_matched is not None:
            tensors["auroc_length_matched"] = self.auroc_length_matched
        out.mkdir(parents=True, exist_ok=True)
        with temporary_file(out, TENSORS_FILE) as tmp:
            safetensors.numpy.save_file({k: v.astype(np.float64) for k, v in tensors.items()},
                                        tmp)  # fmt: skip
            share_mode(tmp)
            os.replace(tmp, out / TENSORS_FILE)
        # the JSON last: a folder whose JSON names these sites has their tensors
        write_json_atomic(out / META_FILE, {"sites": self.sites, "widths": self.widths,
                                             **self.meta})  # fmt: skip
        return out

    @staticmethod
    def is_folder(path: str | Path) -> bool:
        return (Path(path) / META_FILE).is_file()

    @classmethod
    def load(cls, folder: str | Path) -> NeuronScores:
        folder = Path(folder)
        if not cls.is_folder(folder):
            raise InputError(f"{folder} holds no {META_FILE}; run `eigenshift locate neurons`")
        meta = read_json(folder / META_FILE, "neuron scores")
        meta = meta if isinstance(meta, dict) else {}
        sites, widths = meta.pop("sites", None), meta.pop("widths", None)
        if not (isinstance(sites, list) and all(isinstance(s, str) for s in sites)
                and isinstance(widths, list) and len(widths) == len(sites)
                and all(isinstance(w, int) and w > 0 for w in widths)):  # fmt: skip
            raise InputError(f"{folder / META_FILE} is not a neuron-scores record (it needs "
                             "'sites' and one positive 'widths' entry per site): run `eigenshift "
                             "locate neurons` again")  # fmt: skip
        refuse_special(folder)
        try:
            tensors = safetensors.numpy.load_file(folder / TENSORS_FILE)
        except (OSError, SafetensorError) as exc:
            raise InputError(f"{folder}: cannot read {TENSORS_FILE}: {exc}") from None
        n = sum(widths)
        for name in ("auroc", "ap", "auroc_length_matched"):
            array = tensors.get(name)
            if array is None and name != "auroc_length_matched":
                raise InputError(f"{folder / TENSORS_FILE} lacks '{name}': run `eigenshift "
                                 "locate neurons` again")  # fmt: skip
            if array is not None and (array.shape != (n,) or array.dtype.kind != "f"):
                raise InputError(f"{folder / TENSORS_FILE}: '{name}' must hold {n} floats "
                                 f"(one per unit), not {array.dtype} {array.shape}")  # fmt: skip
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


def neuron_scores_for(
    lm: LanguageModel,
    data: LabelledTexts,
    folder: Path,
    *,
    max_examples: int | None = None,
    progress: bool = True,
) -> NeuronScores:
    """The scores of `lm` on `data` kept in `folder` when they match both, else freshly
    computed (without bootstrap, as the AurA-family fits need) and saved there."""
    if NeuronScores.is_folder(folder):
        scores = NeuronScores.load(folder)
        if scores.meta.get("data_hash") == data.hash() and scores.meta.get("model") == lm.name:
            return scores
    config = NeuronConfig(bootstrap=0, max_examples=max_examples or len(data))
    scores = locate_neurons(lm, data, config, progress=progress)
    scores.save(folder)
    return scores


def neuron_scores_from(
    lm: LanguageModel, spec: str, source: LabelledSource, folder: Path, *, progress: bool = True
) -> NeuronScores:
    """`spec` is a `locate neurons` folder (read as is) or labelled data, read as `source` says,
    whose scores are computed once and kept in `folder`."""
    if NeuronScores.is_folder(spec):
        return NeuronScores.load(spec)
    scores = neuron_scores_for(lm, source.load(spec), folder, max_examples=source.max_examples,
                               progress=progress)  # fmt: skip
    log.info("neuron scores saved to %s", folder)
    return scores
