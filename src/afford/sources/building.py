"""Build any nn.Module on the meta device: no weights, no memory, any size."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from afford.errors import TraceError


def build_on_meta(factory: Callable[[], nn.Module], dtype: torch.dtype, device: str = "meta") -> nn.Module:
    """Call `factory` with meta as the default device; if its constructor needs real values (e.g. a
    `linspace(...).tolist()` for drop-path rates), fall back to accelerate's `init_empty_weights`, which moves
    each parameter to meta as it is registered and leaves small helper tensors on the CPU."""
    if device != "meta":  # a real model with random weights (afford measure)
        with torch.device(device):
            module = factory()
        return module.to(dtype=dtype) if dtype != torch.float32 else module
    try:
        with torch.device("meta"):
            module = factory()
    except (RuntimeError, NotImplementedError) as first:
        try:
            from accelerate import init_empty_weights
        except ImportError as exc:  # pragma: no cover - accelerate is a dependency
            raise TraceError(f"cannot build the model on meta: {first}") from exc
        with init_empty_weights(include_buffers=False):
            module = factory()
    module = module.to(device="meta")
    if dtype != torch.float32:
        module = module.to(dtype=dtype)
    return module
