"""`export_model`: the edit baked into plain weights, saved as a transformers folder that loads
with `AutoModelForCausalLM.from_pretrained` (and serves in vLLM or TGI) without eigenshift."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .interventions import Intervention
from .io_utils import atomic_folder, prepare_out
from .models import LanguageModel

EXPORT_FILE = "eigenshift-export.json"


def export_model(lm: LanguageModel, intervention: Intervention, out: str | Path) -> Path:
    """Bake `intervention` into `lm` (in place: load a fresh model for other work) and save it.
    A tied unembedding is untied first, so the input embeddings are saved unchanged."""
    out = Path(out)
    prepare_out(out, EXPORT_FILE)
    intervention.bake(lm)
    with atomic_folder(out, marker=EXPORT_FILE) as tmp:
        lm.model.save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        provenance = {
            "base_model": lm.name,
            "base_source": lm.source,
            "intervention": asdict(intervention.meta),
            "note": "weights of models loaded from GGUF are de-quantized 4-bit weights",
        }
        (tmp / EXPORT_FILE).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return out
