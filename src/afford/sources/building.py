"""Build any nn.Module on the meta device: no weights, no memory, any size."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


def build_on_meta(factory: Callable[[], nn.Module], dtype: torch.dtype, device: str = "meta") -> nn.Module:
    """Call `factory` with meta as the default device; if its constructor needs real values (e.g. a
    `linspace(...).tolist()` for drop-path rates), fall back to `parameters_on_meta`, which moves each parameter
    to meta as it is registered and leaves small helper tensors on the CPU."""
    if device != "meta":  # a real model with random weights (afford measure)
        with torch.device(device):
            module = factory()
        return module.to(dtype=dtype) if dtype != torch.float32 else module
    try:
        with torch.device("meta"):
            module = factory()
    except (RuntimeError, NotImplementedError):
        with parameters_on_meta():
            module = factory()
    module = module.to(device="meta")
    if dtype != torch.float32:
        module = module.to(dtype=dtype)
    return module


@contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Within the block every parameter moves to meta as it is registered, while buffers and the constructor's
    helper tensors stay on the CPU: accelerate's `init_empty_weights(include_buffers=False)` (its `init_on_device`),
    kept here so that the core (torchvision's RegNets need it) does not depend on accelerate."""
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        """Register as usual, then swap the parameter for a meta one of the same class and flags."""
        original(module, name, param)
        if param is not None:
            held = module._parameters[name]
            assert held is not None  # for mypy: registered just above
            kwargs = dict(held.__dict__)
            kwargs["requires_grad"] = param.requires_grad
            hf_initialized = kwargs.pop("_is_hf_initialized", None)  # an attribute, not a constructor argument
            module._parameters[name] = type(held)(held.to("meta"), **kwargs)
            if hf_initialized is not None:
                module._parameters[name]._is_hf_initialized = hf_initialized  # type: ignore[union-attr]

    nn.Module.register_parameter = register  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        nn.Module.register_parameter = original  # type: ignore[method-assign]
