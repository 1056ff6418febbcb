"""Where a module's weights live when a model is spread by a device map or quantized.

With accelerate's device maps a block may sit on another GPU, on the CPU, or on disk (its
weights on the meta device, loaded for each call by accelerate's hook); with bitsandbytes its
weight is packed integers. Hooks cast their tensors to the module's execution device and
compute dtype, statistics read weights through `materialized`, and weights that are offloaded or
quantized are never written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch
from accelerate.utils import align_module_device, has_offloaded_params
from torch import nn


def execution_device(module: nn.Module) -> torch.device:
    """Where the module computes: accelerate's execution device, else its weights' device."""
    hook = getattr(module, "_hf_hook", None)
    device = getattr(hook, "execution_device", None)
    if device is not None:
        return torch.device(device if not isinstance(device, int) else f"cuda:{device}")
    for param in module.parameters():
        if param.device.type != "meta":
            return param.device
    return torch.device("cpu")


def compute_dtype(module: nn.Module, default: torch.dtype) -> torch.dtype:
    """The dtype activations have at this module (a quantized weight's storage is not it)."""
    if is_quantized(module):
        return default
    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return default


def is_offloaded(module: nn.Module) -> bool:
    """Weights of the module or a child kept off the execution device (CPU or disk offload)
    and loaded for each call."""
    return any(has_offloaded_params(sub) for sub in module.modules())


def is_quantized(module: nn.Module) -> bool:
    """bitsandbytes (or any packed) weights: no floating-point weight to fold an edit into."""
    weight = getattr(module, "weight", None)
    name = type(module).__name__
    return name in ("Linear4bit", "Linear8bitLt") or (
        isinstance(weight, torch.Tensor) and not weight.is_floating_point()
    )


@contextmanager
def materialized(module: nn.Module) -> Iterator[None]:
    """The real weights of the module and its children in place for the block, offloaded or
    not (accelerate hooks each offloaded submodule separately)."""
    with ExitStack() as stack:
        for sub in module.modules():
            if has_offloaded_params(sub):
                stack.enter_context(align_module_device(sub))
        yield
