"""Where things live inside each model family: unembedding, final norm, blocks, MLP hidden units.

Everything downstream names modules through an `Architecture`, so adding a family is one row in
`FAMILIES`, and an unknown model can still be used by naming its modules by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from ..core.errors import UnsupportedArchitectureError
from .options import SiteOverrides


@dataclass(frozen=True)
class Layout:
    """Module names of one family, relative to the `*ForCausalLM` object."""

    blocks: str
    final_norm: str | None
    mlp_site: str  # relative to a block; its *input* is the MLP hidden units


_LLAMA = Layout("model.layers", "model.norm", "mlp.down_proj")
FAMILIES: dict[str, Layout] = {
    "llama": _LLAMA,
    "mistral": _LLAMA,
    "mixtral": Layout("model.layers", "model.norm", "block_sparse_moe"),
    "qwen2": _LLAMA,
    "qwen3": _LLAMA,
    "gemma": _LLAMA,
    "gemma2": _LLAMA,
    "gemma3_text": _LLAMA,
    "phi3": _LLAMA,
    "olmo": _LLAMA,
    "olmo2": _LLAMA,
    "gpt2": Layout("transformer.h", "transformer.ln_f", "mlp.c_proj"),
    "gpt_neox": Layout("gpt_neox.layers", "gpt_neox.final_layer_norm", "mlp.dense_4h_to_h"),
    "opt": Layout("model.decoder.layers", "model.decoder.final_layer_norm", "fc2"),
    "falcon": Layout("transformer.h", "transformer.ln_f", "mlp.dense_4h_to_h"),
    "mpt": Layout("transformer.blocks", "transformer.norm_f", "ffn.down_proj"),
    "phi": Layout("model.layers", "model.final_layernorm", "mlp.fc2"),
}


@dataclass(frozen=True)
class Architecture:
    family: str
    unembedding: str
    final_norm: str | None
    blocks: str
    mlp_site: str
    tied: bool
    hidden_size: int
    vocab_size: int
    num_layers: int
    mlp_width: int | None

    def block_names(self) -> list[str]:
        return [f"{self.blocks}.{i}" for i in range(self.num_layers)]

    def mlp_site_names(self) -> list[str]:
        return [f"{self.blocks}.{i}.{self.mlp_site}" for i in range(self.num_layers)]

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def get_module(model: nn.Module, name: str) -> nn.Module:
    """`model.get_submodule` with an error that names the missing piece."""
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise UnsupportedArchitectureError(
            f"module '{name}' not found in {type(model).__name__}"
        ) from exc


def _has(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's Conv1D: a linear layer that stores its weight as (in, out)."""
    weight = getattr(module, "weight", None)
    return type(module).__name__ == "Conv1D" and weight is not None and weight.ndim == 2


def linear_width(module: nn.Module, side: str = "input") -> int | None:
    """Units on the input or output side of a linear layer (Linear or Conv1D); None otherwise."""
    if isinstance(module, nn.Linear):
        return module.in_features if side == "input" else module.out_features
    if is_conv1d(module):
        return int(weight_of(module).shape[0 if side == "input" else 1])
    return None


def weight_of(module: nn.Module) -> torch.Tensor:
    """A module's `weight` as the tensor it is (nn.Module attributes type as Tensor | Module)."""
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _call(model: nn.Module, method: str) -> nn.Module | None:
    fn = getattr(model, method, None)
    return fn() if callable(fn) else None


def _unembedding_name(model: nn.Module) -> str | None:
    head = _call(model, "get_output_embeddings")
    if head is None:
        return None
    for name, module in model.named_modules():
        if module is head:
            return name
    return None


def _is_tied(model: nn.Module, head: nn.Module) -> bool:
    inputs = _call(model, "get_input_embeddings")
    weight = getattr(head, "weight", None)
    if inputs is None or weight is None:
        return False
    return bool(weight.data_ptr() == weight_of(inputs).data_ptr())


def detect_architecture(model: nn.Module, overrides: SiteOverrides | None = None) -> Architecture:
    """Name the sites of `model`, from its family's layout, or from `overrides`, or fail clearly."""
    overrides = overrides or SiteOverrides()
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", "unknown")
    layout = FAMILIES.get(model_type)
    family = model_type
    if layout is None:
        # An unknown type may still share a known layout (many forks do): take the first that fits.
        layout = next(
            (
                lay
                for lay in dict.fromkeys(FAMILIES.values())
                if _has(model, lay.blocks) and _has(model, f"{lay.blocks}.0.{lay.mlp_site}")
            ),
            None,
        )
        family = f"{model_type} (unknown; {layout.blocks} layout)" if layout else model_type
    layout = layout or Layout("", None, "")
    layout = replace(
        layout,
        blocks=overrides.blocks or layout.blocks,
        final_norm=overrides.final_norm or layout.final_norm,
        mlp_site=overrides.mlp_site or layout.mlp_site,
    )
    unembedding = overrides.unembedding or _unembedding_name(model)

    missing = []
    if not unembedding or not _has(model, unembedding):
        missing.append(f"unembedding ({unembedding or 'get_output_embeddings() returned None'})")
    if not layout.blocks or not _has(model, layout.blocks):
        missing.append(f"decoder blocks ({layout.blocks or 'no known layout'})")
    elif not _has(model, f"{layout.blocks}.0.{layout.mlp_site}"):
        missing.append(f"MLP site ({layout.blocks}.0.{layout.mlp_site or '?'})")
    if layout.final_norm and not _has(model, layout.final_norm):
        missing.append(f"final norm ({layout.final_norm})")
    if missing:
        raise UnsupportedArchitectureError(
            f"unsupported architecture '{model_type}' ({type(model).__name__}): could not find "
            + "; ".join(missing)
            + ". Name the modules by hand: --unembedding, --blocks, --mlp-site, --final-norm "
            "(library: SiteOverrides)"
        )
    assert unembedding is not None
    head = get_module(model, unembedding)
    blocks = get_module(model, layout.blocks)
    weight = getattr(head, "weight", None)
    if weight is None or weight.ndim != 2:
        raise UnsupportedArchitectureError(
            f"unembedding '{unembedding}' has no 2-D weight; "
            "name a Linear module with --unembedding"
        )
    return Architecture(
        family=family,
        unembedding=unembedding,
        final_norm=layout.final_norm,
        blocks=layout.blocks,
        mlp_site=layout.mlp_site,
        tied=_is_tied(model, head),
        hidden_size=int(weight.shape[1]),
        vocab_size=int(weight.shape[0]),
        num_layers=len(blocks),  # type: ignore[arg-type]
        mlp_width=linear_width(get_module(model, f"{layout.blocks}.0.{layout.mlp_site}")),
    )
