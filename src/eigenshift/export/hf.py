"""`export_model`: the edit baked into plain weights, saved as a transformers folder that loads
with `AutoModelForCausalLM.from_pretrained` without eigenshift.

An edit that shifts every logit by a constant (centered EigenShift: the unembedding gains a bias
its architecture lacks, which the family's loader would drop) travels as a logit bias, in the
forms its consumers apply: `sequence_bias` in generation_config.json, which transformers'
`generate` applies by itself, and `logit_bias.json` ({token id: bias}), the `logit_bias` of
vLLM's `SamplingParams` and of OpenAI-style servers (vLLM, llama.cpp). Reloaded with eigenshift,
the bias is put back into the head, so perplexity and logits equal the hook's too.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from ..capture.hooks import Site
from ..core.errors import NotBakeableError
from ..core.io import atomic_folder, prepare_out
from ..interventions import Intervention
from ..models import LanguageModel
from ..models.options import LOGIT_BIAS_FILE, LOGIT_BIAS_MARK
from .config import EXPORT_FILE


def _check_exportable(lm: LanguageModel, intervention: Intervention) -> None:
    """A logit bias is added after soft-capping by every consumer, the head's bias before it."""
    head_input = Site(lm.arch.unembedding, "input")
    shifts = any(e.target == head_input and e.affine is not None and e.affine.has_shift
                 for e in intervention.edits(lm))  # fmt: skip
    cap = lm.logit_softcap
    if shifts and cap and getattr(lm.unembedding, "bias", None) is None:
        raise NotBakeableError(
            f"'{intervention.meta.method}' shifts every logit by a constant, and this model "
            f"soft-caps its logits ({cap:g}) before any consumer's logit bias applies, so the "
            "export would differ from the hook: apply it with a hook, or fit with --dampen zero"
        )


@contextmanager
def without_logit_bias(lm: LanguageModel) -> Iterator[torch.Tensor | None]:
    """The bias eigenshift gave the head detached for the block (yielded): the weights as saved,
    the logits a consumer sees before it adds the logit bias."""
    if not lm.logit_bias_added:
        yield None
        return
    head = lm.unembedding
    bias = lm.unembedding_bias()
    head.register_parameter("bias", None)
    try:
        yield bias.detach().float().cpu()
    finally:
        head.bias = bias


def export_model(
    lm: LanguageModel,
    intervention: Intervention,
    out: str | Path,
    *,
    inspect: Callable[[LanguageModel], None] | None = None,
) -> Path:
    """Save `lm` with `intervention` baked in; `lm` is put back as it was. A tied unembedding
    is untied in the export, so the input embeddings are saved unchanged. `inspect` sees the
    model exactly as saved (e.g. to record reference logits a server can be checked against)."""
    out = Path(out)
    prepare_out(out, EXPORT_FILE)
    _check_exportable(lm, intervention)
    with intervention.baked(lm), atomic_folder(out, marker=EXPORT_FILE) as tmp, \
            without_logit_bias(lm) as bias:
        if inspect is not None:
            inspect(lm)
        lm.model.save_pretrained(tmp)
        lm.tokenizer.save_pretrained(tmp)
        provenance = {
            "base_model": lm.name,
            "base_source": lm.source,
            "intervention": asdict(intervention.meta),
            "note": "weights of models loaded from GGUF are de-quantized 4-bit weights",
        }
        if bias is not None:
            values = bias.tolist()
            generation = copy.deepcopy(lm.model.generation_config)
            generation.sequence_bias = [[[i], b] for i, b in enumerate(values)]
            setattr(generation, LOGIT_BIAS_MARK, True)
            generation._from_model_config = False  # else the mark is dropped on reading
            generation.save_pretrained(tmp)
            (tmp / LOGIT_BIAS_FILE).write_text(json.dumps({str(i): b for i, b in
                                                           enumerate(values)}) + "\n")  # fmt: skip
            provenance["logit_bias"] = {
                "why": "the edit adds a constant to every logit, and this architecture's head "
                "has no bias",
                "transformers": "generation_config.json sequence_bias (generate applies it)",
                "vllm_llama_cpp_openai": f"{LOGIT_BIAS_FILE}: pass as logit_bias",
                "perplexity": "add it to the logits (eigenshift's loader puts it in the head)",
            }
        (tmp / EXPORT_FILE).write_text(json.dumps(provenance, indent=2, default=str) + "\n")
    return out
