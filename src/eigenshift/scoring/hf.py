"""Any Hugging Face sequence classifier as a scorer (the paper's RoBERTa, Detoxify-style models)."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ..core.errors import UNSAFE_PICKLE, ScorerError
from ..models.language_model import head_chars

_NON_TOXIC = ("non", "not", "neutral", "clean", "safe", "normal")


def toxic_label_index(id2label: dict[int, str]) -> int:
    """The label that means toxic: a name with 'toxic' and no negation, else index 1 of two."""
    names = {int(i): str(n).lower() for i, n in id2label.items()}
    hits = [i for i, n in names.items() if "toxic" in n and not any(w in n for w in _NON_TOXIC)]
    if len(hits) == 1:
        return hits[0]
    if len(names) == 2:
        return 1
    raise ScorerError(
        f"cannot tell which label means toxic among {sorted(names.values())}; pass label=NAME"
    )


class HFClassifierScorer:
    def __init__(
        self,
        spec: str,
        label: str | None = None,
        batch_size: int = 32,
        device: str = "cpu",
        max_length: int = 512,
        trust_remote_code: bool = False,
    ) -> None:
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                spec, trust_remote_code=trust_remote_code
            )
            self.model = AutoModelForSequenceClassification.from_pretrained(
                spec, trust_remote_code=trust_remote_code
            ).to(device)
        except pickle.UnpicklingError:
            raise ScorerError(f"scorer '{spec}' {UNSAFE_PICKLE}") from None
        except (OSError, ValueError) as exc:
            first = (
                str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            )
            raise ScorerError(
                f"could not load scorer '{spec}' as a Hugging Face sequence classifier: {first}"
            ) from exc
        self.model.eval()
        id2label = self.model.config.id2label
        if label is not None:
            matches = [int(i) for i, n in id2label.items() if n == label]
            if not matches:
                raise ScorerError(f"scorer '{spec}' has no label '{label}'; it has {id2label}")
            self.index = matches[0]
        else:
            self.index = toxic_label_index(id2label)
        # One logit means a sigmoid score (multi-label heads); more means a softmax over classes.
        self.sigmoid = self.model.config.num_labels == 1 or (
            self.model.config.problem_type == "multi_label_classification"
        )
        self.batch_size, self.max_length, self.device = batch_size, max_length, device
        self.name = f"hf:{spec}"

    @torch.inference_mode()
    def score(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                head_chars(texts[start : start + self.batch_size], self.max_length),
                return_tensors="pt",
                padding=True,
                padding_side="right",  # classifiers with absolute positions expect it
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            logits = self.model(**enc).logits.float()
            probs = torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, dim=-1)
            out.append(probs[:, self.index].double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)
