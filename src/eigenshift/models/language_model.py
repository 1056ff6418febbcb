"""A causal LM, its tokenizer and its named sites, travelling together through every step."""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .architecture import (
    Architecture,
    SiteOverrides,
    detect_architecture,
    get_module,
    is_conv1d,
    weight_of,
)
from .placement import compute_dtype, execution_device, is_offloaded, materialized


@dataclass
class Batch:
    """Left-padded token ids with their mask and the positions each real token has."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
        }


def accepts_logits_to_keep(lm: LanguageModel) -> bool:
    """Whether the model can compute logits for the last position only (transformers >= 4.50)."""
    return "logits_to_keep" in inspect.signature(lm.model.forward).parameters


# A token of a byte-level BPE rarely spans more characters than this: a text truncated to n tokens
# is first cut to n x this many characters, so a huge text is never tokenized whole.
CHARS_PER_TOKEN_BOUND = 32


def head_chars(texts: Sequence[str], max_tokens: int | None) -> list[str]:
    """Each text cut to the characters its first `max_tokens` tokens can span."""
    if max_tokens is None:
        return list(texts)
    return [t[: max_tokens * CHARS_PER_TOKEN_BOUND] for t in texts]


def cache_argument(lm: LanguageModel) -> str:
    """The forward argument that takes the KV cache: `cache` in current transformers (where
    `past_key_values` is deprecated), `past_key_values` before."""
    parameters = inspect.signature(lm.model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position 0 at each row's first real token, so left padding never shifts positions."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


@dataclass
class LanguageModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    arch: Architecture
    name: str = "model"
    source: str = ""
    location: str = ""  # the folder (or hub id) transformers read: what another engine loads
    # True when eigenshift gave the unembedding a bias its architecture lacks (a constant logit
    # shift): an export saves it as a logit bias, since the family's loader would drop it.
    logit_bias_added: bool = False
    _hash_cache: dict[tuple[object, ...], str] = field(default_factory=dict, repr=False)

    @classmethod
    def wrap(
        cls,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        name: str | None = None,
        overrides: SiteOverrides | None = None,
    ) -> LanguageModel:
        """Wrap a model the user already loaded; the tokenizer gets a pad token if it lacks one."""
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.eval()
        arch = detect_architecture(model, overrides)
        return cls(model, tokenizer, arch,
                   name or str(getattr(model.config, "_name_or_path", "model")))  # fmt: skip

    @property
    def device(self) -> torch.device:
        """Where the unembedding computes: inputs and results go here (a device map's hooks move
        each block's inputs to that block)."""
        return execution_device(self.unembedding)

    @property
    def dtype(self) -> torch.dtype:
        return self.placement(self.arch.unembedding)[1]

    def placement(self, name: str) -> tuple[torch.device, torch.dtype]:
        """Device and activation dtype at a module: where an edit's tensors must be cast to."""
        module = self.module(name)
        return execution_device(module), compute_dtype(module, self.model.dtype)

    @property
    def context_length(self) -> int | None:
        """Positions the model was trained on, where its config says (None: it does not)."""
        config = self.model.config
        config = getattr(config, "text_config", None) or config
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def logit_softcap(self) -> float | None:
        """The cap some families put on their logits (cap * tanh(logits / cap)), if any."""
        config = self.model.config
        for cfg in (config, getattr(config, "text_config", None)):
            cap = getattr(cfg, "final_logit_softcapping", None)
            if cap:
                return float(cap)
        return None

    def module(self, name: str) -> nn.Module:
        return get_module(self.model, name)

    @property
    def unembedding(self) -> nn.Module:
        return self.module(self.arch.unembedding)

    def encode(
        self, texts: list[str], max_length: int | None = None, add_special_tokens: bool = True
    ) -> Batch:
        """Tokenize with left padding (so the last column is every row's last real token)."""
        enc = self.tokenizer(
            head_chars(texts, max_length),
            return_tensors="pt",
            padding=True,
            padding_side="left",
            truncation=max_length is not None,
            max_length=max_length,
            add_special_tokens=add_special_tokens,
        )
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        return Batch(ids, mask, positions_from_mask(mask))

    def pad(self, sequences: Sequence[Sequence[int]]) -> Batch:
        """Token id lists as one left-padded batch (what `encode` makes of texts)."""
        width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            if seq:
                ids[row, width - len(seq) :] = torch.tensor(list(seq))
                mask[row, width - len(seq) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        return Batch(ids, mask, positions_from_mask(mask))

    def weight_hash(self, module_name: str) -> str:
        """sha256 of a module's parameters in a fixed order: how artifacts recognise a model."""
        module = self.module(module_name)
        params = sorted(module.named_parameters(), key=lambda kv: kv[0])
        # Cached per storage and in-place version, so an edited weight is hashed again.
        key = (module_name, tuple((p.data_ptr(), p._version) for _, p in params))
        if key not in self._hash_cache or is_offloaded(module):
            digest = hashlib.sha256()
            with materialized(module):  # the same hash wherever the weights live
                for pname, param in sorted(module.named_parameters(), key=lambda kv: kv[0]):
                    tensor = param.detach().to("cpu", torch.float32).contiguous()
                    digest.update(pname.encode())
                    digest.update(str(tuple(tensor.shape)).encode())
                    digest.update(tensor.numpy().tobytes())
            self._hash_cache[key] = digest.hexdigest()
        return self._hash_cache[key]

    def untie_unembedding(self) -> None:
        """Give the unembedding its own weight, so editing it never touches the input embeddings."""
        if not self.arch.tied:
            return
        head = self.unembedding
        head.weight = nn.Parameter(weight_of(head).detach().clone(), requires_grad=False)
        self.model.config.tie_word_embeddings = False
        text_config = getattr(self.model.config, "text_config", None)
        if text_config is not None:
            text_config.tie_word_embeddings = False
        self.arch = replace(self.arch, tied=False)

    def unembedding_bias(self) -> torch.Tensor:
        """The unembedding's bias, given a zero one first where the architecture has none (the
        head is untied first: a tied weight is never edited, and the bias is the head's own)."""
        self.untie_unembedding()
        head = self.unembedding
        bias = getattr(head, "bias", None)
        if bias is None:
            weight = weight_of(head)
            rows = weight.shape[1] if is_conv1d(head) else weight.shape[0]
            zeros = torch.zeros(rows, dtype=self.dtype, device=self.device)  # not meta, not packed
            bias = nn.Parameter(zeros, requires_grad=False)
            head.bias = bias
            self.logit_bias_added = True
        return bias

    @contextmanager
    def weights_kept(self, names: Iterable[str]) -> Iterator[LanguageModel]:
        """These modules' parameters, the unembedding's tie and the added-bias mark put back on
        any exit, whatever the block wrote, untied or added: a bake for the length of a block
        (an export, another engine) without loading a second copy of the model. The values are
        kept on the CPU, so a GPU holds no second copy either."""
        kept = {}
        with torch.no_grad():
            for name in dict.fromkeys(names):
                params = self.module(name)._parameters
                kept[name] = {key: (param, None if param is None else param.detach().cpu().clone())
                              for key, param in params.items()}  # fmt: skip
        configs = [c for c in (self.model.config, getattr(self.model.config, "text_config", None))
                   if c is not None]  # fmt: skip
        ties = [getattr(c, "tie_word_embeddings", None) for c in configs]
        arch, bias_added = self.arch, self.logit_bias_added
        try:
            yield self
        finally:
            with torch.no_grad():
                for name, saved in kept.items():
                    params = self.module(name)._parameters
                    for key in [k for k in params if k not in saved]:
                        del params[key]
                    for key, (param, value) in saved.items():
                        if param is not None and value is not None:
                            param.copy_(value)
                        params[key] = param
            for config, tie in zip(configs, ties, strict=True):
                if tie is not None:
                    config.tie_word_embeddings = tie
            self.arch, self.logit_bias_added = arch, bias_added

    def describe(self) -> dict[str, object]:
        n_params = sum(p.numel() for p in self.model.parameters())
        return {
            "name": self.name,
            "source": self.source,
            "class": type(self.model).__name__,
            "parameters": n_params,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            **self.arch.as_dict(),
        }
